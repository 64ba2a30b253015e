import CLinux
import Glibc

/// Carries out a validated `JailPlan`, in this order:
///
/// 1. close inherited fds (all but 0, 1, 2, the launcher's liveness pipe and the passed ones); enter the cgroup,
///    if any; clear the environment; watch the liveness pipe;
/// 2. unshare mount, PID, IPC, UTS (and net) namespaces; fork, so the child is PID 1;
/// 3. the parent supervises (`Supervisor`); the child builds the jail (`Mounts`): private
///    propagation, tmpfs root, /dev nodes, binds, /proc, pivot_root, old root detached, / read-only;
/// 4. hostname; rlimits; uid, gid, groups and capabilities (`Capabilities`); no_new_privs;
///    death with the parent; /proc/self/status checked; signals reset; umask 077;
/// 5. execve(2) of the program, with only the `--env` environment.
///
/// Any failing step ends the jailer with status 125 and one line naming the step; nothing runs
/// half-jailed.
public enum Jailer {
    public static func run(_ plan: JailPlan) -> Never {
        do {
            try FileDescriptors.closeInherited(keeping: (plan.livenessFD.map { [$0] } ?? []) + plan.passedFDs)
            if let cgroup = plan.cgroup { try enterCgroup(cgroup) }
            try Environment.clear()
            Supervisor.blockSignals()
            if let fd = plan.livenessFD { try watchLauncher(fd) }
            try Namespaces.unshare(network: plan.network)
        } catch {
            die("\(error)")
        }
        // The child learns of the parent's death through this pipe's other end closing.
        var liveness: [Int32] = [0, 0]
        guard pipe(&liveness) == 0 else { die("pipe: \(String(cString: strerror(errno)))") }
        let child = fork()
        switch child {
        case -1: die("fork into the new PID namespace: \(String(cString: strerror(errno)))")
        case 0:
            close(liveness[1])
            enter(plan, liveness: liveness[0])
        default:
            close(liveness[0])
            // The program holds the passed descriptors now; the supervisor needs none.
            for fd in plan.passedFDs { close(fd) }
            Supervisor.wait(for: child, launcher: plan.livenessFD)
        }
    }

    /// The launcher's liveness pipe (`JailPlan.livenessFD`): SIGIO when it hangs up, which the
    /// supervisor takes as the launcher's SIGTERM. A launcher already gone stops the jail here.
    static func watchLauncher(_ fd: Int32) throws(JailFailure) {
        let step = "watch the launcher's liveness pipe (fd \(fd))"
        try system(step, { clinux_signal_on_hangup(fd) })
        if try system(step, { clinux_has_hung_up(fd) }) == 1 {
            throw JailFailure(step: step, detail: "the launcher is already gone")
        }
    }

    /// Writes this process's pid to the cgroup's cgroup.procs (cgroup-v2.rst, "Processes"):
    /// what it forks and every thread after inherit the cgroup.
    static func enterCgroup(_ directory: String) throws(JailFailure) {
        let step = "enter cgroup \(directory)"
        let fd = try system(step, { open(directory + "/cgroup.procs", O_WRONLY | O_CLOEXEC) })
        defer { close(fd) }
        let text = Array("\(getpid())".utf8)
        let written = try system(step, { Int32(clamping: text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }) })
        guard written == text.count else { throw JailFailure(step: step, detail: "short write") }
    }

    /// The child, PID 1 of the new namespace: builds the jail and becomes the program.
    static func enter(_ plan: JailPlan, liveness: Int32) -> Never {
        do {
            try Mounts.makePrivate()
            Capabilities.prepare()
            try Mounts.mountRoot(plan.root)
            if !plan.devices.isEmpty {
                try Mounts.mountDev(plan.root)
                for device in plan.devices {
                    try Mounts.createDevice(device, root: plan.root, uid: plan.uid, gid: plan.gid)
                }
            }
            for bind in plan.binds { try Mounts.bind(bind, root: plan.root) }
            try Mounts.mountProc(plan.root)
            try Mounts.pivot(into: plan.root)
            try Mounts.seal(hasDev: !plan.devices.isEmpty)
            try Namespaces.setHostname(plan.id)
            try Limits.apply(plan.limits)
            try Capabilities.dropAll(becoming: plan.uid, gid: plan.gid)
            try NoNewPrivileges.set()
            try dieWithParent(liveness)
            let problems = ProcStatus.problems(try ProcStatus.read(), uid: plan.uid, gid: plan.gid)
            guard problems.isEmpty else {
                throw JailFailure(step: "check /proc/self/status before exec", detail: problems.joined(separator: "; "))
            }
        } catch {
            die("\(error)")
        }
        Supervisor.resetSignals()
        umask(0o077)
        execute(plan)
    }

    /// PR_SET_PDEATHSIG SIGKILL (set after the uid change, which clears it): if the supervisor
    /// is killed, the program goes too. A parent already gone shows as a hung-up pipe.
    static func dieWithParent(_ liveness: Int32) throws(JailFailure) {
        try system("set the parent-death signal (PR_SET_PDEATHSIG)", { clinux_set_parent_death_signal(SIGKILL) })
        var poller = pollfd(fd: liveness, events: Int16(POLLIN), revents: 0)
        let ready = try system("poll the supervisor's pipe", { poll(&poller, 1, 0) })
        if ready > 0 { throw JailFailure(step: "wait for exec", detail: "the supervising parent exited") }
        close(liveness)
    }

    static func execute(_ plan: JailPlan) -> Never {
        let argv = ([plan.program] + plan.arguments).map { strdup($0) } + [nil]
        let envp = plan.environment.map { strdup($0) } + [nil]
        execve(plan.program, argv, envp)
        let code = errno
        Diagnostics.report("exec \(plan.program): \(String(cString: strerror(code)))")
        _exit(code == ENOENT ? JailerStatus.notFound : JailerStatus.cannotExecute)
    }

    /// One line on stderr, then status 125.
    public static func die(_ message: String) -> Never {
        Diagnostics.report(message)
        _exit(JailerStatus.setupFailed)
    }
}
