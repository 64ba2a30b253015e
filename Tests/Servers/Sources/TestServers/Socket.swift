import Glibc

/// A failed system call, read as "CALL: strerror".
public struct SystemError: Error, CustomStringConvertible {
    public let call: String
    public let code: Int32
    public var description: String { "\(call): \(String(cString: strerror(code)))" }
}

/// The one EINTR funnel: retries a call a signal interrupted; any other -1 is thrown.
@discardableResult
func retrying<Result: BinaryInteger>(_ call: String, _ body: () -> Result) throws(SystemError) -> Result {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = errno
        if code != EINTR { throw SystemError(call: call, code: code) }
    }
}

/// `HOST:PORT` for a listener: an IPv4 address (loopback in every test) and a port, 0 for one
/// the kernel picks.
public struct ListenAddress: Sendable, Equatable {
    public let host: String
    public let port: UInt16

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        var probe = in_addr()
        let host = String(text[..<colon])
        guard inet_pton(AF_INET, host, &probe) == 1 else { return nil }
        self.host = host
        self.port = port
    }
}

/// A listening TCP socket; `port` is the one bound (the kernel's pick for port 0).
public final class Listener: @unchecked Sendable {
    let fd: Int32
    public let address: ListenAddress
    public let port: UInt16

    public init(_ address: ListenAddress) throws(SystemError) {
        fd = try retrying("socket") { socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = address.port.bigEndian
        inet_pton(AF_INET, address.host, &sin.sin_addr)
        let fd = fd
        do {
            try retrying("bind \(address.host):\(address.port)") {
                withUnsafePointer(to: &sin) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
            try retrying("listen") { listen(fd, 128) }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            try retrying("getsockname") {
                withUnsafeMutablePointer(to: &sin) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
                }
            }
        } catch {
            close(fd)
            throw error
        }
        self.address = address
        port = UInt16(bigEndian: sin.sin_port)
    }

    deinit { close(fd) }

    /// The next connection. Running out of descriptors (EMFILE, ENFILE) or memory waits a
    /// little and tries again rather than ending the server.
    public func accept() -> Connection {
        while true {
            let client = Glibc.accept(fd, nil, nil)
            if client >= 0 { return Connection(fd: client) }
            if errno != EINTR { usleep(10_000) }
        }
    }
}

/// A connected stream socket with a read buffer; closed when released.
public final class Connection {
    let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0

    /// What one read asks the kernel for.
    static let readSize = 64 * 1024

    public init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// Gives up on a peer that sends nothing for `seconds` (SO_RCVTIMEO), so an idle
    /// keep-alive connection does not hold its thread forever.
    public func setReadTimeout(seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Bytes read but not consumed yet.
    var buffered: Int { buffer.count - start }

    /// Reads more into the buffer; false at end of stream (or a read timeout).
    func fill() throws(SystemError) -> Bool {
        if start > 0, start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > Connection.readSize {
            buffer.removeFirst(start)
            start = 0
        }
        let old = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: Connection.readSize))
        let fd = fd
        let n: Int
        do throws(SystemError) {
            n = try retrying("read") { buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + old, Connection.readSize) } }
        } catch {
            buffer.removeLast(Connection.readSize)
            // A read timeout (SO_RCVTIMEO) or a reset ends the connection like an end of stream.
            if error.code == EAGAIN || error.code == ECONNRESET { return false }
            throw error
        }
        buffer.removeLast(Connection.readSize - n)
        return n > 0
    }

    /// The bytes up to and including the first blank line (CRLF CRLF, or LF LF: RFC 9112 §2.2
    /// lets a recipient take a bare LF as a line end). nil at end of stream before any byte;
    /// `HTTPError.headersTooLarge` past `limit`.
    func readHead(limit: Int) throws -> [UInt8]? {
        var scanned = 0
        while true {
            let available = buffer.count - start
            var i = start + max(0, scanned - 3)
            while i < buffer.count {
                if buffer[i] == 0x0A {
                    var end: Int?
                    if i + 1 < buffer.count, buffer[i + 1] == 0x0A { end = i + 2 }
                    if i + 2 < buffer.count, buffer[i + 1] == 0x0D, buffer[i + 2] == 0x0A { end = i + 3 }
                    if let end {
                        if end - start > limit { break }
                        return take(end - start)
                    }
                }
                i += 1
            }
            scanned = available
            if available > limit { throw HTTPError(status: 431, "the request's header section is over \(limit) bytes") }
            guard try fill() else {
                if buffer.count - start == 0 { return nil }
                throw HTTPError(status: 400, "the connection ended inside the request's header section")
            }
        }
    }

    /// One line ending in LF (CRLF or bare LF), without its end; for chunk sizes and trailers.
    func readLine(limit: Int) throws -> [UInt8] {
        var scanned = 0
        while true {
            // Offsets from `start`: fill() may move the unread bytes to the buffer's front.
            var i = start + scanned
            while i < buffer.count {
                if buffer[i] == 0x0A {
                    var line = take(i + 1 - start)
                    line.removeLast()
                    if line.last == 0x0D { line.removeLast() }
                    return line
                }
                i += 1
            }
            scanned = buffer.count - start
            if buffer.count - start > limit { throw HTTPError(status: 400, "a chunk line is over \(limit) bytes") }
            guard try fill() else { throw HTTPError(status: 400, "the connection ended inside a chunked body") }
        }
    }

    /// Passes exactly `count` bytes to `sink`, in pieces as they arrive.
    func read(count: UInt64, into sink: (ArraySlice<UInt8>) throws -> Void) throws {
        var left = count
        while left > 0 {
            if start == buffer.count {
                guard try fill() else { throw HTTPError(status: 400, "the connection ended inside the request's body") }
            }
            let n = Int(min(UInt64(buffer.count - start), left))
            try sink(buffer[start..<(start + n)])
            start += n
            left -= UInt64(n)
        }
    }

    private func take(_ count: Int) -> [UInt8] {
        let bytes = Array(buffer[start..<(start + count)])
        start += count
        return bytes
    }

    /// Writes every byte (MSG_NOSIGNAL: a closed peer is an error here, not SIGPIPE).
    public func write(_ bytes: [UInt8]) throws(SystemError) {
        var done = 0
        let fd = fd
        while done < bytes.count {
            let n = try retrying("send") {
                bytes.withUnsafeBytes { send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            }
            done += n
        }
    }

    public func write(_ text: String) throws(SystemError) { try write(Array(text.utf8)) }
}

/// Starts a detached thread running `body` (a thread per connection: the servers are small and
/// their clients few).
public func startThread(_ body: @escaping @Sendable () -> Void) throws(SystemError) {
    final class Entry {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    let entry = Unmanaged.passRetained(Entry(body)).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(&thread, &attributes, { raw in
        Unmanaged<Entry>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, entry)
    if result != 0 {
        Unmanaged<Entry>.fromOpaque(entry).release()
        throw SystemError(call: "pthread_create", code: result)
    }
}

/// Writes `text` to `path` through a temporary file and rename(2), so a test waiting for the
/// file never reads half of it.
public func writeFileAtomically(_ path: String, _ text: String) throws(SystemError) {
    let temporary = path + ".tmp.\(getpid())"
    let fd = try retrying("open \(temporary)") { open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
    let bytes = Array(text.utf8)
    var done = 0
    while done < bytes.count {
        let n = try retrying("write \(temporary)") { bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) } }
        done += n
    }
    close(fd)
    try retrying("rename \(path)") { rename(temporary, path) }
}

/// Reads a whole regular file of at most `limit` bytes.
public func readFile(_ path: String, limit: Int) throws -> [UInt8] {
    let fd = try retrying("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let n = try retrying("read \(path)") { chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) } }
        if n == 0 { return bytes }
        bytes += chunk[0..<n]
        if bytes.count > limit { throw UsageError("\(path) is over \(limit) bytes") }
    }
}

/// Appends one line to a file opened with O_APPEND, under the caller's lock.
public final class LineLog: @unchecked Sendable {
    let fd: Int32

    public init(path: String) throws(SystemError) {
        fd = try retrying("open \(path)") { open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) }
    }

    deinit { close(fd) }

    public func append(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        let fd = fd
        _ = try? retrying("write") { bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
    }
}
