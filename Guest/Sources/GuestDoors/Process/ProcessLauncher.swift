import CGuestSys
import Doors
import Glibc
import POSIX

/// A started child: its pid and this side's ends of its pipes (all non-blocking).
struct LaunchedProcess {
    var pid: Int32
    /// The write end of the child's stdin, when the request sends stdin.
    var stdin: Descriptor?
    var stdout: Descriptor
    var stderr: Descriptor
}

/// Starts the program of an Exec request with posix_spawn(3).
///
/// posix_spawn rather than fork: this process is multithreaded, and glibc's posix_spawn
/// (clone with CLONE_VM | CLONE_VFORK) runs nothing but async-signal-safe steps before exec,
/// and returns exec's errno (ENOENT, EACCES, ...) to the caller instead of a child that exits 127.
enum ProcessLauncher {
    /// The search path for a bare program name when the request's environment has no PATH.
    static let defaultSearchPath = "/usr/bin:/bin:/usr/sbin:/sbin"

    static func launch(
        _ request: ExecRequest,
        defaultSearchPath: String = defaultSearchPath,
        reaper: ChildReaper,
        mailbox: ExitMailbox
    ) throws(SystemError) -> LaunchedProcess {
        let searchPath = request.env.first { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? defaultSearchPath
        let program = try resolve(request.argv[0], searchPath: searchPath)

        let stdout = try makePipe()
        let stderr = try makePipe()
        let stdin = request.sendsStdin ? try makePipe() : nil

        var actions = posix_spawn_file_actions_t()
        var result = posix_spawn_file_actions_init(&actions)
        guard result == 0 else { throw SystemError("posix_spawn_file_actions_init", errno: result) }
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin {
            result = posix_spawn_file_actions_adddup2(&actions, stdin.read.raw, STDIN_FILENO)
        } else {
            result = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        }
        guard result == 0 else { throw SystemError("posix_spawn_file_actions (stdin)", errno: result) }
        result = posix_spawn_file_actions_adddup2(&actions, stdout.write.raw, STDOUT_FILENO)
        guard result == 0 else { throw SystemError("posix_spawn_file_actions (stdout)", errno: result) }
        result = posix_spawn_file_actions_adddup2(&actions, stderr.write.raw, STDERR_FILENO)
        guard result == 0 else { throw SystemError("posix_spawn_file_actions (stderr)", errno: result) }
        if let cwd = request.cwd {
            result = guest_spawn_addchdir(&actions, cwd)
            guard result == 0 else { throw SystemError("posix_spawn_file_actions (cwd)", errno: result) }
        }

        // The child gets its own process group (so a timeout can kill what it started too), an
        // empty signal mask, and default dispositions: this process ignores SIGPIPE, and an
        // ignored signal would otherwise stay ignored across exec.
        var attributes = posix_spawnattr_t()
        result = posix_spawnattr_init(&attributes)
        guard result == 0 else { throw SystemError("posix_spawnattr_init", errno: result) }
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        let flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        result = posix_spawnattr_setflags(&attributes, Int16(flags))
        if result == 0 { result = posix_spawnattr_setpgroup(&attributes, 0) }
        if result == 0 { result = posix_spawnattr_setsigmask(&attributes, &noSignals) }
        if result == 0 { result = posix_spawnattr_setsigdefault(&attributes, &allSignals) }
        guard result == 0 else { throw SystemError("posix_spawnattr", errno: result) }

        let pid = try withCStringArray(request.argv) { argv throws(SystemError) in
            try withCStringArray(request.env) { envp throws(SystemError) in
                try reaper.spawn(for: mailbox) { () throws(SystemError) -> Int32 in
                    var pid: pid_t = 0
                    let result = posix_spawn(&pid, program, &actions, &attributes, argv, envp)
                    guard result == 0 else { throw SystemError("exec", errno: result, subject: request.argv[0]) }
                    return pid
                }
            }
        }

        // The child has its copies; closing ours lets EOF through when it exits.
        stdout.write.close()
        stderr.write.close()
        stdin?.read.close()
        let launched = LaunchedProcess(pid: pid, stdin: stdin?.write, stdout: stdout.read, stderr: stderr.read)
        do {
            try launched.stdout.setNonBlocking()
            try launched.stderr.setNonBlocking()
            try launched.stdin?.setNonBlocking()
        } catch {
            // Cannot happen for a fresh pipe; if it does, the child must not outlive its request.
            reaper.abandon(pid)
            throw error
        }
        return launched
    }

    /// The file to exec for `program`: itself when it contains a "/", else the first
    /// executable regular file named so in `searchPath` (execvp's rules; an empty entry is ".").
    static func resolve(_ program: String, searchPath: String) throws(SystemError) -> String {
        if program.utf8.contains(UInt8(ascii: "/")) { return program }
        var sawDenied = false
        for directory in searchPath.split(separator: ":", omittingEmptySubsequences: false) {
            let base = directory.isEmpty ? "." : String(directory)
            let candidate = base.hasSuffix("/") ? base + program : base + "/" + program
            var info = stat()
            guard stat(candidate, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
            if access(candidate, X_OK) == 0 { return candidate }
            sawDenied = true
        }
        throw SystemError("exec", errno: sawDenied ? EACCES : ENOENT, subject: program)
    }
}
