import CGuestSys
import Doors
import Glibc
@testable import GuestDoors
import POSIX

/// One server for the whole test process, as in the guest (there is one reaper per process).
let sharedServer: DoorsServer = {
    // Stand in for PID 1: orphans of the children we start are reparented to this process.
    precondition(guest_become_subreaper() == 0, "prctl(PR_SET_CHILD_SUBREAPER) failed")
    var limit = rlimit()
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    if getrlimit(resource, &limit) == 0 {
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(resource, &limit)
    }
    var configuration = DoorsServerConfiguration()
    configuration.log = { message in
        var line = "[server] " + message + "\n"
        line.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
    do {
        return try DoorsServer(configuration: configuration)
    } catch {
        fatalError("cannot start the Doors server: \(error)")
    }
}()

enum ClientError: Error, CustomStringConvertible {
    case timedOut(String)
    case closed
    case system(String, Int32)
    case unexpected(String)

    var description: String {
        switch self {
        case .timedOut(let what): "timed out waiting for \(what)"
        case .closed: "the server closed the connection"
        case .system(let call, let code): "\(call): errno \(code)"
        case .unexpected(let what): "unexpected: \(what)"
        }
    }
}

/// A small synchronous Doors client over one end of a socketpair; the server serves the other.
final class DoorsClient {
    let fd: Int32
    private(set) var decoder = FrameDecoder()
    private(set) var encoder = FrameEncoder()
    private(set) var session: Session?
    private(set) var serverHello: Hello?
    private var nextID: UInt32 = 1

    /// Connects to `server` and, unless told not to, does the handshake.
    init(server: DoorsServer = sharedServer, handshake: Bool = true) throws {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &fds) == 0 else { throw ClientError.system("socketpair", errno) }
        fd = fds[0]
        server.startConnection(fds[1])
        if handshake { try self.handshake() }
    }

    /// Takes over a socket already connected to a server, and does the handshake.
    init(adopting fd: Int32) throws {
        self.fd = fd
        try handshake()
    }

    deinit { close(fd) }

    func handshake() throws {
        let local = Hello(software: "guest-doors-tests")
        try send(Frame(requestID: 0, .hello(local)))
        let frame = try receive()
        guard case .hello(let remote) = frame.message else { throw ClientError.unexpected("\(frame)") }
        let agreed = try Session.negotiate(local: local, remote: remote)
        serverHello = remote
        session = agreed
        decoder.apply(agreed)
        encoder = FrameEncoder(session: agreed)
    }

    func newID() -> UInt32 {
        defer { nextID += 1 }
        return nextID
    }

    func send(_ frame: Frame) throws {
        try sendRaw(encoder.encode(frame))
    }

    func sendRaw(_ bytes: [UInt8]) throws {
        try writeAll(fd: fd, bytes)
    }

    /// The next frame; throws `closed` at end of stream.
    func receive(timeoutMilliseconds: Int32 = 30_000) throws -> Frame {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            if let frame = try decoder.next() { return frame }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, timeoutMilliseconds)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { throw ClientError.timedOut("a frame") }
            let wanted = min(buffer.count, decoder.freeCapacity)
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, wanted) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == ECONNRESET { throw ClientError.closed }
            guard n >= 0 else { throw ClientError.system("read", errno) }
            guard n > 0 else { throw ClientError.closed }
            decoder.append(buffer[0..<n])
        }
    }

    /// Receives frames until the server closes the stream; returns them.
    func receiveUntilClosed(timeoutMilliseconds: Int32 = 10_000) throws -> [Frame] {
        var frames: [Frame] = []
        while true {
            do {
                frames.append(try receive(timeoutMilliseconds: timeoutMilliseconds))
            } catch ClientError.closed {
                return frames
            }
        }
    }

    /// Runs one request to its terminal frame, collecting everything on its id. Frames for
    /// other ids are an error here.
    func exec(_ request: ExecRequest, stdin: [UInt8]? = nil, id: UInt32? = nil) throws -> ExecOutcome {
        let id = id ?? newID()
        try send(Frame(requestID: id, .exec(request)))
        if let stdin {
            var offset = 0
            while offset < stdin.count {
                let end = min(stdin.count, offset + 100_000)
                try send(Frame(requestID: id, .stdinData(Array(stdin[offset..<end]))))
                offset = end
            }
            try send(Frame(requestID: id, .stdinEnd))
        }
        return try collectExec(id)
    }

    func collectExec(_ id: UInt32, timeoutMilliseconds: Int32 = 30_000) throws -> ExecOutcome {
        var outcome = ExecOutcome()
        while true {
            let frame = try receive(timeoutMilliseconds: timeoutMilliseconds)
            guard frame.requestID == id else { throw ClientError.unexpected("frame for request \(frame.requestID)") }
            outcome.types.append(frame.type)
            switch frame.message {
            case .started(let pid): outcome.pid = pid
            case .stdoutData(let bytes):
                outcome.stdout += bytes
                outcome.largestChunk = max(outcome.largestChunk, bytes.count)
            case .stderrData(let bytes): outcome.stderr += bytes
            case .exit(let report):
                outcome.exit = report
                return outcome
            case .error(let reply):
                outcome.error = reply
                return outcome
            default: throw ClientError.unexpected("\(frame.type) during exec")
            }
        }
    }

    /// A request with a single terminal answer (Stat, Mkdir, Remove, Ping).
    func call(_ message: DoorsMessage) throws -> DoorsMessage {
        let id = newID()
        try send(Frame(requestID: id, message))
        let frame = try receive()
        guard frame.requestID == id else { throw ClientError.unexpected("frame for request \(frame.requestID)") }
        return frame.message
    }
}

extension DoorsClient {
    /// WriteFile with `chunks` as FileData, then FileEnd; returns the terminal answer.
    func writeFile(
        _ path: String, _ chunks: [[UInt8]], permissions: UInt32 = 0o644,
        options: WriteOptions = [.create, .truncate]
    ) throws -> DoorsMessage {
        let id = newID()
        try send(Frame(requestID: id, .writeFile(WriteFileRequest(path: path, permissions: permissions, options: options))))
        for chunk in chunks { try send(Frame(requestID: id, .fileData(chunk))) }
        try send(Frame(requestID: id, .fileEnd))
        let frame = try receive()
        guard frame.requestID == id else { throw ClientError.unexpected("frame for request \(frame.requestID)") }
        return frame.message
    }

    /// ReadFile to its terminal frame, handing each FileData to `consume`.
    func readFile(
        _ path: String, offset: UInt64 = 0, length: UInt64? = nil, consume: ([UInt8]) -> Void = { _ in }
    ) throws -> (frames: Int, error: ErrorReply?) {
        let id = newID()
        try send(Frame(requestID: id, .readFile(ReadFileRequest(path: path, offset: offset, length: length))))
        var frames = 0
        while true {
            let frame = try receive()
            guard frame.requestID == id else { throw ClientError.unexpected("frame for request \(frame.requestID)") }
            switch frame.message {
            case .fileData(let bytes):
                frames += 1
                consume(bytes)
            case .fileEnd: return (frames, nil)
            case .error(let reply): return (frames, reply)
            default: throw ClientError.unexpected("\(frame.type) during ReadFile")
            }
        }
    }

    func readWholeFile(_ path: String, offset: UInt64 = 0, length: UInt64? = nil) throws -> [UInt8]? {
        var bytes: [UInt8] = []
        let result = try readFile(path, offset: offset, length: length) { bytes += $0 }
        return result.error == nil ? bytes : nil
    }

    /// List to its terminal frame.
    func list(_ path: String) throws -> (entries: [DirectoryEntry], batches: Int, error: ErrorReply?) {
        let id = newID()
        try send(Frame(requestID: id, .list(path: path)))
        var entries: [DirectoryEntry] = []
        var batches = 0
        while true {
            let frame = try receive()
            guard frame.requestID == id else { throw ClientError.unexpected("frame for request \(frame.requestID)") }
            switch frame.message {
            case .listEntries(let batch):
                batches += 1
                entries += batch
            case .listEnd: return (entries, batches, nil)
            case .error(let reply): return (entries, batches, reply)
            default: throw ClientError.unexpected("\(frame.type) during List")
            }
        }
    }
}

struct ExecOutcome {
    var pid: Int32?
    var stdout: [UInt8] = []
    var stderr: [UInt8] = []
    var exit: ExitReport?
    var error: ErrorReply?
    var types: [FrameType] = []
    var largestChunk = 0

    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

func writeAll(fd: Int32, _ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 && (errno == EPIPE || errno == ECONNRESET) { throw ClientError.closed }
        guard n > 0 else { throw ClientError.system("send", errno) }
        offset += n
    }
}

extension DoorsMessage {
    var errorReply: ErrorReply? {
        if case .error(let reply) = self { return reply }
        return nil
    }
}

/// FNV-1a over 64-bit words (and the tail bytes): a checksum cheap enough for 64 MiB in a
/// debug build. Fed in pieces of any size, it gives the same result as all at once.
struct Checksum {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    private var pending: [UInt8] = []
    private(set) var count = 0

    mutating func add(_ bytes: [UInt8]) {
        count += bytes.count
        pending += bytes
        let whole = pending.count / 8 * 8
        pending.withUnsafeBytes { raw in
            var index = 0
            while index < whole {
                value = (value ^ raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)) &* 0x100_0000_01b3
                index += 8
            }
        }
        pending.removeFirst(whole)
    }

    var final: UInt64 {
        var result = value
        for byte in pending { result = (result ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return result
    }
}

/// Deterministic pseudo-random bytes (xorshift64*).
struct ByteGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed | 1 }

    mutating func next(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { raw in
            var index = 0
            while index + 8 <= count {
                raw.storeBytes(of: step(), toByteOffset: index, as: UInt64.self)
                index += 8
            }
            while index < count {
                raw[index] = UInt8(truncatingIfNeeded: step())
                index += 1
            }
        }
        return bytes
    }

    private mutating func step() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}

/// A fresh directory under /tmp for one test; removed (with everything in it) by `remove()`.
struct ScratchDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/guest-doors-test.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ClientError.system("mkdtemp", errno) }
        path = String(cString: made)
    }

    func remove() {
        _ = try? FileOperations.remove(RemoveRequest(path: path, recursive: true))
    }
}

/// Whether a process with this pid exists (zombies count).
func processExists(_ pid: Int32) -> Bool {
    kill(pid, 0) == 0 || errno == EPERM
}

/// Waits up to `seconds` for `condition`.
func eventually(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = MonotonicClock.nanoseconds() + UInt64(seconds * 1e9)
    while MonotonicClock.nanoseconds() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

/// The pids of this process's children that are zombies.
func zombieChildren() -> [Int32] {
    childProcesses().filter { $0.state == "Z" }.map(\.pid)
}

/// This process's children and their states, from /proc/<pid>/stat.
func childProcesses() -> [(pid: Int32, state: Substring)] {
    let me = getpid()
    var children: [(pid: Int32, state: Substring)] = []
    guard let proc = opendir("/proc") else { return [] }
    defer { closedir(proc) }
    while let entry = readdir(proc) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        guard let pid = Int32(name) else { continue }
        guard let stat = readSmallFile("/proc/\(pid)/stat") else { continue }
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { continue }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count >= 2, let parent = Int32(fields[1]) else { continue }
        if parent == me { children.append((pid, fields[0])) }
    }
    return children
}

/// What a process has written so far: `wchar` in /proc/<pid>/io.
func bytesWritten(by pid: Int32) -> Int? {
    guard let io = readSmallFile("/proc/\(pid)/io") else { return nil }
    for line in io.split(separator: "\n") where line.hasPrefix("wchar:") {
        return Int(line.dropFirst(6).drop { $0 == " " })
    }
    return nil
}

func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard n >= 0 else { return nil }
    return String(decoding: buffer[0..<n], as: UTF8.self)
}

/// Runs `body` on a new thread.
func background(_ body: @escaping @Sendable () -> Void) {
    do {
        try POSIXThread.detach(name: "test", body)
    } catch {
        fatalError("cannot start a thread: \(error)")
    }
}
