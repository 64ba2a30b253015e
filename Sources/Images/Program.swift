import Glibc
import POSIX

/// What an external program left: its wait status, its stdout (up to a limit), the last lines
/// it wrote, and the signal passed on to it, if one was.
struct ProgramResult: Sendable {
    var status: Int32
    var output: [UInt8]
    var outputTruncated: Bool
    var lastLines: [String]
    /// The last lines of stderr alone.
    var errorLines: [String]
    var forwardedSignal: Int32?

    var succeeded: Bool { status == 0 }

    /// "exited N" or "killed by signal N".
    var statusText: String {
        if status & 0x7f == 0 { return "exited \((status >> 8) & 0xff)" }
        return "killed by signal \(status & 0x7f)"
    }
}

/// External programs, each started with posix_spawn from an argv array (never through a shell),
/// with an environment given in full.
enum Program {
    /// Where `name` is: on `searchPath` (PATH's form), then in /usr/sbin, /sbin, /usr/bin and
    /// /bin (mke2fs and its kin live in sbin, where a user's PATH may not look).
    static func locate(_ name: String, searchPath: String?) -> String? {
        let directories = (searchPath ?? "").split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        for directory in directories where !directory.isEmpty {
            let candidate = directory + "/" + name
            var info = stat()
            if stat(candidate, &info) == 0, info.st_mode & S_IFMT == S_IFREG, access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Runs `argv` (argv[0] a path) with exactly `environment`, stdin /dev/null, in a process
    /// group of its own. Each line it writes goes to `onLine`; stdout is kept up to
    /// `outputLimit` bytes, and the last `keepLines` lines of both streams. `pendingSignal`, asked
    /// every 100 ms, names a signal to pass on to its process group, as a terminal's Ctrl-C would
    /// (the caller took it).
    static func run(_ argv: [String], environment: [String], outputLimit: Int = 1 << 20, keepLines: Int = 40,
                    onLine: ((String) -> Void)? = nil, pendingSignal: (() -> Int32?)? = nil) throws(ImageError) -> ProgramResult {
        precondition(!argv.isEmpty)
        // Socket pairs rather than pipes: made close-on-exec atomically (Swift's Glibc has no
        // pipe2), so a child another thread starts meanwhile cannot hold our ends open.
        var outPair: [Int32] = [-1, -1]
        var errPair: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &outPair) == 0 else { throw .failed("cannot run \(argv[0]): socketpair: \(describeErrno())") }
        guard socketpair(AF_UNIX, type, 0, &errPair) == 0 else {
            close(outPair[0])
            close(outPair[1])
            throw .failed("cannot run \(argv[0]): socketpair: \(describeErrno())")
        }
        var readEnds = [outPair[0], errPair[0]]
        defer { for fd in readEnds where fd >= 0 { close(fd) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPair[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPair[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup($0) } + [nil]
        defer { for p in cArguments + cEnvironment { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArguments, cEnvironment)
        close(outPair[1])
        close(errPair[1])
        guard rc == 0 else { throw .failed("cannot run \(argv[0]): \(describeErrno(rc))") }

        var result = ProgramResult(status: 0, output: [], outputTruncated: false, lastLines: [], errorLines: [], forwardedSignal: nil)
        var partial: [[UInt8]] = [[], []]
        func take(_ line: [UInt8], fromStandardError: Bool) {
            let text = String(decoding: line, as: UTF8.self)
            onLine?(text)
            result.lastLines.append(text)
            if result.lastLines.count > keepLines { result.lastLines.removeFirst() }
            guard fromStandardError else { return }
            result.errorLines.append(text)
            if result.errorLines.count > keepLines { result.errorLines.removeFirst() }
        }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while readEnds.contains(where: { $0 >= 0 }) {
            var polled = readEnds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&polled, nfds_t(polled.count), 100)
            if ready < 0 && errno != EINTR { break }
            if let signal = pendingSignal?() {
                kill(-pid, signal)
                if result.forwardedSignal == nil { result.forwardedSignal = signal }
            }
            guard ready > 0 else { continue }
            for index in 0..<2 where readEnds[index] >= 0 && polled[index].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { raw in retryingEINTR { read(readEnds[index], raw.baseAddress, raw.count) } }
                if count <= 0 {
                    if !partial[index].isEmpty { take(partial[index], fromStandardError: index == 1); partial[index] = [] }
                    close(readEnds[index])
                    readEnds[index] = -1
                    continue
                }
                let chunk = buffer[..<count]
                if index == 0 {
                    let room = max(0, outputLimit - result.output.count)
                    result.output.append(contentsOf: chunk.prefix(room))
                    if count > room { result.outputTruncated = true }
                }
                for byte in chunk {
                    if byte == 0x0a { take(partial[index], fromStandardError: index == 1); partial[index] = [] }
                    else if partial[index].count < 4096 { partial[index].append(byte) }
                }
            }
        }
        // It may outlive its pipes (a daemon it started holds them no longer): wait, still passing signals on.
        var status: Int32 = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            if reaped < 0 && errno != EINTR { throw .failed("cannot wait for \(argv[0]): \(describeErrno())") }
            if let signal = pendingSignal?() {
                kill(-pid, signal)
                if result.forwardedSignal == nil { result.forwardedSignal = signal }
            }
            usleep(50_000)
        }
        result.status = status
        return result
    }
}
