import Glibc

/// One byte stream to a guest vsock port through the VMM's Unix socket (Firecracker's host
/// convention: connect, send `CONNECT <port>\n`, read `OK <host port>\n`; after that the bytes
/// are the guest's). Blocking, with a receive and send timeout so that no check waits forever.
final class VsockStream {
    private(set) var fd: Int32
    /// The longest any one send or receive waits.
    let ioSeconds: Double

    /// Connects to guest `port`, retrying while nothing listens there (the VMM then resets the
    /// stream before its OK line), for at most `connectSeconds`.
    init(socketPath: String, port: UInt32, connectSeconds: Double = 10, ioSeconds: Double) throws(ProbeError) {
        self.ioSeconds = ioSeconds
        let deadline = Clock.seconds() + connectSeconds
        while true {
            if let fd = try Self.attempt(socketPath: socketPath, port: port) {
                self.fd = fd
                break
            }
            guard Clock.seconds() < deadline else { throw .notListening(port: port, seconds: connectSeconds) }
            usleep(50_000)
        }
        setTimeouts(seconds: ioSeconds)
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    private static func attempt(socketPath: String, port: UInt32) throws(ProbeError) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", errno: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socketPath.utf8)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw .usage("socket path \(socketPath) is too long for a Unix socket")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.enumerated() { raw[i] = byte }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw .system("connect \(socketPath)", errno: e)
        }
        guard sendBytes(fd, Array("CONNECT \(port)\n".utf8)) else {
            close(fd)
            return nil
        }
        // A byte at a time: what follows the newline is the guest's.
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < 64 {
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                close(fd)
                return nil
            }
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        let answer = String(decoding: line, as: UTF8.self)
        guard answer.hasPrefix("OK ") else {
            close(fd)
            throw .connectRefused(port: port, answer: answer)
        }
        return fd
    }

    private func setTimeouts(seconds: Double) {
        var limit = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        let size = socklen_t(MemoryLayout<timeval>.size)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, size)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, size)
    }

    /// Sends `bytes[range]` (all of it by default), waiting for room as needed.
    func send(_ bytes: [UInt8], range: Range<Int>? = nil) throws(ProbeError) {
        let range = range ?? 0..<bytes.count
        var offset = range.lowerBound
        while offset < range.upperBound {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, range.upperBound - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { throw .timedOut("the guest to take more bytes") }
            if n <= 0 { throw .system("send", errno: n < 0 ? errno : EPIPE) }
            offset += n
        }
    }

    /// One recv(2) into `buffer` from index `start`, at most `count` bytes; 0 at end of stream.
    func receive(into buffer: inout [UInt8], at start: Int = 0, count: Int? = nil) throws(ProbeError) -> Int {
        let wanted = min(count ?? buffer.count - start, buffer.count - start)
        let fd = fd
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + start, wanted, 0) }
            if n >= 0 { return n }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw .timedOut("bytes from the guest") }
            throw .system("recv", errno: errno)
        }
    }

    /// Exactly `count` bytes; throws when the stream ends first.
    func receiveExactly(_ count: Int) throws(ProbeError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = try receive(into: &bytes, at: filled)
            if n == 0 { throw .closed("after \(filled) of \(count) bytes") }
            filled += n
        }
        return bytes
    }

    /// No more bytes from us; the guest reads EOF.
    func shutdownWrite() {
        shutdown(fd, Int32(SHUT_WR))
    }

    /// close(2) at once, whatever is in flight: what an agent that crashes does.
    func closeAbruptly() {
        if fd >= 0 { close(fd) }
        fd = -1
    }
}

/// send(2) of all of `bytes`, MSG_NOSIGNAL; false when the peer is gone.
private func sendBytes(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        offset += n
    }
    return true
}

/// CLOCK_MONOTONIC readings.
enum Clock {
    static func nanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }

    static func seconds() -> Double { Double(nanoseconds()) / 1e9 }
}
