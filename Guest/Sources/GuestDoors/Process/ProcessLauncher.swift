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

/// Starts the program of an Exec request with posix_spawn(3), from a descriptor.
///
/// posix_spawn rather than fork: this process is multithreaded, and glibc's posix_spawn
/// (clone with CLONE_VM | CLONE_VFORK) runs nothing but async-signal-safe steps before exec,
/// and returns exec's errno (ENOENT, EACCES, ...) to the caller instead of a child that exits 127.
///
/// The file is opened here first (`program`, without following a symlink, when the host judged
/// one; else found from argv[0] as execvp would) and executed through `/proc/self/fd/N`, the
/// way fexecve(3) does: the kernel runs that open file, whatever its path names by then, and
/// argv[0] stays as written (busybox picks its applet by it). The working directory is opened
/// the same way and entered with fchdir. A `#!` script cannot run from a close-on-exec
/// descriptor (its interpreter opens `/proc/self/fd/N` after the exec), so for a file that
/// starts with `#!` the child keeps the descriptor open across the exec: the interpreter reads
/// the script through it, and the interpreter named on the `#!` line is found by the kernel.
enum ProcessLauncher {
    /// The search path for a bare program name when the request's environment has no PATH.
    static let defaultSearchPath = "/usr/bin:/bin:/usr/sbin:/sbin"

    static func launch(
        _ request: ExecRequest,
        defaultSearchPath: String = defaultSearchPath,
        forcedEnvironment: [(name: String, value: String)] = [],
        reaper: ChildReaper,
        mailbox: ExitMailbox
    ) throws(SystemError) -> LaunchedProcess {
        let file = try openProgram(request, defaultSearchPath: defaultSearchPath)
        let directory = try request.cwd.map { cwd throws(SystemError) in
            try FileOperations.openWithoutSymlinks(cwd, guest_o_path | O_DIRECTORY, call: "chdir")
        }

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
        if let directory {
            result = guest_spawn_addfchdir(&actions, directory.raw)
            guard result == 0 else { throw SystemError("posix_spawn_file_actions (cwd)", errno: result) }
        }
        if try isScript(file) {
            // dup2 onto itself clears close-on-exec, in the child only.
            result = posix_spawn_file_actions_adddup2(&actions, file.raw, file.raw)
            guard result == 0 else { throw SystemError("posix_spawn_file_actions (script)", errno: result) }
        }
        let program = "/proc/self/fd/\(file.raw)"

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
            try withCStringArray(environment(request.env, forcing: forcedEnvironment)) { envp throws(SystemError) in
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

    /// `requested` ("NAME=value" entries) without any entry named in `forced`, then `forced`.
    static func environment(_ requested: [String], forcing forced: [(name: String, value: String)]) -> [String] {
        guard !forced.isEmpty else { return requested }
        let names = Set(forced.map(\.name))
        let kept = requested.filter { entry in
            let name = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? entry
            return !names.contains(name)
        }
        return kept + forced.map { "\($0.name)=\($0.value)" }
    }

    /// The open file to execute: the judged `program`, opened without following a symlink; or,
    /// when nothing judged one, the file argv[0] names as execvp finds it. O_NONBLOCK keeps a
    /// FIFO from blocking the open (the exec then fails with EACCES).
    static func openProgram(_ request: ExecRequest, defaultSearchPath: String) throws(SystemError) -> Descriptor {
        if let program = request.program {
            do { return try FileOperations.openWithoutSymlinks(program, O_RDONLY | O_NONBLOCK | O_NOFOLLOW) } catch {
                throw SystemError("exec", errno: error.errno, subject: program)
            }
        }
        let searchPath = request.env.first { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? defaultSearchPath
        let path = try resolve(request.argv[0], searchPath: searchPath)
        let fd = retryingEINTR { open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemError("exec", subject: request.argv[0]) }
        return Descriptor(fd)
    }

    /// Whether the file starts with "#!", the kernel's mark of a script (binfmt_script).
    static func isScript(_ file: Descriptor) throws(SystemError) -> Bool {
        var mark: [UInt8] = [0, 0]
        let n = mark.withUnsafeMutableBytes { raw in retryingEINTR { pread(file.raw, raw.baseAddress, 2, 0) } }
        // A file that cannot be read (a directory) is no script; the exec will say what it is.
        return n == 2 && mark == [UInt8(ascii: "#"), UInt8(ascii: "!")]
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
