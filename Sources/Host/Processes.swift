import Glibc
import Ledger
import POSIX

/// Starting and stopping the processes momin runs: momin-vmm (in its jail), the agent host.
public enum Processes {
    /// The descriptor number a child gets its end of a liveness pair as.
    public static let livenessDescriptor: Int32 = 3

    /// Where the child finds the `index`th descriptor passed to it (a VM's disks): 10, 11, ...
    public static func passedDescriptor(_ index: Int) -> Int32 { 10 + Int32(index) }

    /// Starts `argv` (looked up on PATH when not a path): stdin /dev/null, stdout and stderr to
    /// `output` (ours when nil), no signal blocked; with `setsid`, in a session of its own;
    /// with `liveness`, that descriptor as the child's `livenessDescriptor`. The child's
    /// environment is ours plus `adding` (`NAME=VALUE` entries).
    public static func spawn(_ argv: [String], output: Int32?, setsid: Bool = false, liveness: Int32? = nil,
                             passing passed: [Int32] = [], adding extra: [String] = []) throws(HostError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let output {
            posix_spawn_file_actions_adddup2(&actions, output, 1)
            posix_spawn_file_actions_adddup2(&actions, output, 2)
        }
        // dup2 clears close-on-exec on the copy: the child keeps its end, and only that one.
        // Each source is first copied to a close-on-exec descriptor of 100 or more, so that no
        // dup2 below lands on a source not yet copied, and none is its own target (whether a
        // spawn's dup2 onto itself clears close-on-exec depends on the libc).
        let sources = ((liveness.map { [$0] } ?? []) + passed).map { fcntl($0, F_DUPFD_CLOEXEC, 100) }
        defer { for fd in sources where fd >= 0 { close(fd) } }
        if let bad = sources.firstIndex(where: { $0 < 0 }) {
            throw .vmFailed("cannot pass descriptor \(bad) to \(argv[0]): \(describeErrno())")
        }
        var next = sources.makeIterator()
        if liveness != nil, let fd = next.next() { posix_spawn_file_actions_adddup2(&actions, fd, livenessDescriptor) }
        for index in passed.indices { if let fd = next.next() { posix_spawn_file_actions_adddup2(&actions, fd, passedDescriptor(index)) } }
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
        var inherited: [String] = []
        var entry = environ
        while let text = entry.pointee {
            inherited.append(String(cString: text))
            entry += 1
        }
        let envp = (inherited + extra).map { strdup($0) } + [nil]
        defer { for p in envp { free(p) } }
        let rc = posix_spawnp(&pid, argv[0], &actions, &attributes, cargs, envp)
        guard rc == 0 else { throw .vmFailed("cannot start \(argv[0]): \(describeErrno(rc))") }
        return pid
    }

    /// A connected pair of close-on-exec sockets (made so atomically: no child started
    /// meanwhile by another thread inherits either). The launcher keeps `ours` open for as long
    /// as it lives and hands `theirs` to a child, which learns of the launcher's death, however
    /// it died, from the hang-up.
    public static func livenessPair() throws(HostError) -> (ours: Int32, theirs: Int32) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw .vmFailed("socketpair: \(describeErrno())")
        }
        return (fds[0], fds[1])
    }

    /// Stops a process that is not our child (a VM's jailer, an agent host): SIGTERM, SIGKILL
    /// after 10 s, and waits until it is gone or a zombie its own parent has yet to reap.
    public static func terminate(_ pid: pid_t) {
        kill(pid, SIGTERM)
        var waited = 0
        while kill(pid, 0) == 0, let state = ProcessStat.fields(of: pid)?.first, state != "Z" {
            if waited == 100 { kill(pid, SIGKILL) }
            usleep(100_000)
            waited += 1
        }
    }

    /// A wait status as words: "exited N" or "killed by signal N".
    public static func describe(status: Int32) -> String {
        if status & 0x7f == 0 { return "exited \((status >> 8) & 0xff)" }
        return "killed by signal \(status & 0x7f)"
    }
}

/// A momin-vmm this process started and reaps.
public final class ChildVMM: @unchecked Sendable {
    public let pid: pid_t
    private var status: Int32?

    public init(pid: pid_t) { self.pid = pid }

    /// False once the child has exited (reaped here).
    public var isRunning: Bool {
        if status != nil { return false }
        var s: Int32 = 0
        if waitpid(pid, &s, WNOHANG) == pid { status = s; return false }
        return true
    }

    /// Asks the VMM to stop the guest (SIGTERM) and waits for it; describes how it ended.
    /// A VMM (or its jailer) that has not stopped 10 s after SIGTERM is killed.
    public func stop() -> String {
        if status == nil {
            kill(pid, SIGTERM)
            var s: Int32 = 0
            var waited = 0
            while true {
                let reaped = waitpid(pid, &s, WNOHANG)
                if reaped == pid || (reaped < 0 && errno != EINTR) { break }
                if waited == 100 { kill(pid, SIGKILL) }
                usleep(100_000)
                waited += 1
            }
            status = s
        }
        return Processes.describe(status: status ?? 0)
    }
}

/// The signals that stop a foreground VM (SIGINT, SIGTERM, SIGHUP): blocked in every thread
/// and taken by one, which passes them on.
public enum SignalRelay {
    /// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (threads started after inherit
    /// it; the processes spawned get them unblocked); returns the set.
    public static func blockStopSignals() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        return set
    }

    /// Passes each signal in `set` on to `child` until it exits; its wait status.
    public static func wait(for child: pid_t, relaying set: sigset_t) -> Int32 {
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
