import Glibc
import Seccomp
import VMM

/// Starts `momin-vmm`, the process that holds the microVM, in its jail (`VMJail`). It is
/// looked for as $MOMIN_VMM, then next to this binary, then on PATH.
enum VMMLauncher {
    static func executable() -> String {
        if let env = getenv("MOMIN_VMM"), env.pointee != 0 { return String(cString: env) }
        if let me = Rig.selfPath(), let slash = me.lastIndex(of: "/") {
            let sibling = String(me[..<slash]) + "/momin-vmm"
            if access(sibling, X_OK) == 0 { return sibling }
        }
        return "momin-vmm"
    }

    /// $MOMIN_SECCOMP (kill, trap, log, off; docs/seccomp.md) is for finding a syscall missing
    /// from a thread's list; anything else there is ignored with a warning. Default: kill.
    static func seccompMode() -> SeccompMode {
        guard let text = getenv("MOMIN_SECCOMP").map({ String(cString: $0) }), !text.isEmpty else { return .kill }
        guard let mode = SeccompMode(rawValue: text) else {
            writeStandardError("momin: MOMIN_SECCOMP=\(text) is not one of kill, trap, log, off; using kill\n")
            return .kill
        }
        return mode
    }

    /// momin-vmm's command line for `config`, or, in `jail`, momin-jailer's ending with it.
    static func arguments(_ config: MachineConfiguration, jail: VMJail?, timeout: Double, reportMemory: Bool = false,
                          newSession: Bool = false) -> [String] {
        let vmm = VMMArguments.render(jail?.inside ?? config, timeout: timeout > 0 ? timeout : nil, reportMemory: reportMemory,
                                      newSession: newSession, seccomp: seccompMode())
        if let jail { return jail.argv(vmm: vmm) }
        return [executable()] + vmm
    }

    /// Starts momin-vmm (in its jail) as a child, its stdin /dev/null, its stdout and stderr
    /// going to `logFD` (ours when nil), and every signal unblocked whatever our mask is.
    static func spawn(_ config: MachineConfiguration, jail: VMJail?, timeout: Double, logFD: Int32?,
                      reportMemory: Bool = false, newSession: Bool = false) throws -> pid_t {
        try spawnProcess(arguments(config, jail: jail, timeout: timeout, reportMemory: reportMemory, newSession: newSession),
                         output: logFD)
    }
}

/// Starts `argv` (looked up on PATH when not a path): stdin /dev/null, stdout and stderr to
/// `output` (ours when nil), no signal blocked; with `setsid`, in a session of its own.
func spawnProcess(_ argv: [String], output: Int32?, setsid: Bool = false) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    if let output {
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        posix_spawn_file_actions_adddup2(&actions, output, 2)
    }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    // POSIX_SPAWN_SETSID (0x80, glibc 2.26), which Swift's Glibc module leaves out.
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK) | (setsid ? 0x80 : 0))
    var pid: pid_t = 0
    let cargs = argv.map { strdup($0) } + [nil]
    defer { for p in cargs { free(p) } }
    let rc = posix_spawnp(&pid, argv[0], &actions, &attributes, cargs, environ)
    guard rc == 0 else { throw CLIError(message: "cannot start \(argv[0]): \(String(cString: strerror(rc)))", code: 125) }
    return pid
}

/// Waiting for a VMM in the foreground (`momin boot`): the signals that would stop us go to
/// it instead, and we stop when it does.
enum SignalRelay {
    /// Blocks SIGINT, SIGTERM and SIGHUP here (the child gets them unblocked); returns the set.
    static func blockStopSignals() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        return set
    }

    /// Passes each signal in `set` on to `child` until it exits; its wait status.
    static func wait(for child: pid_t, relaying set: sigset_t) -> Int32 {
        var set = set
        var tick = timespec(tv_sec: 0, tv_nsec: 100_000_000)
        while true {
            var status: Int32 = 0
            let reaped = waitpid(child, &status, WNOHANG)
            if reaped == child { return status }
            if reaped < 0 && errno != EINTR { return 1 << 8 }
            let signal = sigtimedwait(&set, nil, &tick)
            if signal > 0 { kill(child, signal) }
        }
    }
}
