import Glibc
import POSIX

/// A program an install runs (pip, apt-get), the way system(3) runs one: this process's
/// standard streams, and SIGINT and SIGQUIT ignored here while it runs, so that a ^C stops the
/// program and the install still cleans up after it.
enum ChildProgram {
    /// Runs `arguments` (argv[0] looked up on PATH unless it holds a `/`) with `environment`
    /// (`NAME=VALUE` entries; this process's own when nil), and waits. Its exit status, or 128 +
    /// the signal that ended it, as a shell reports a child; exit 70 when it cannot be started.
    static func run(_ arguments: [String], environment: [String]? = nil) throws(HandsClientError) -> Int32 {
        let program = arguments.first ?? ""
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let interrupt = signal(SIGINT, SIG_IGN)
        let quit = signal(SIGQUIT, SIG_IGN)
        defer {
            signal(SIGINT, interrupt)
            signal(SIGQUIT, quit)
        }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var envp: [UnsafeMutablePointer<CChar>?] = (environment ?? []).map { strdup($0) } + [nil]
        defer { for pointer in envp { free(pointer) } }
        guard !argv.dropLast().contains(nil), !envp.dropLast().contains(nil) else {
            throw .unreachable("cannot start \(program): \(describeErrno(ENOMEM))")
        }
        var pid: pid_t = 0
        let result = environment == nil
            ? posix_spawnp(&pid, program, nil, &attributes, &argv, environ)
            : posix_spawnp(&pid, program, nil, &attributes, &argv, &envp)
        guard result == 0 else { throw .unreachable("cannot start \(program): \(describeErrno(result))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw .unreachable("waiting for \(program): \(describeErrno(errno))") }
        }
        // WIFEXITED / WEXITSTATUS and WTERMSIG, which Swift cannot import (macros).
        let ending = status & 0x7f
        return ending == 0 ? (status >> 8) & 0xff : 128 + ending
    }

    /// This process's environment as `NAME=VALUE` entries, without those named in `removing`
    /// and with `adding`'s in place of any of the same name.
    static func environment(adding: [(name: String, value: String)], removing: Set<String> = []) -> [String] {
        var entries: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            entries.append(String(cString: entry))
            pointer += 1
        }
        let replaced = removing.union(adding.map(\.name))
        return entries.filter { entry in
            guard let equals = entry.firstIndex(of: "=") else { return true }
            return !replaced.contains(String(entry[..<equals]))
        } + adding.map { "\($0.name)=\($0.value)" }
    }
}
