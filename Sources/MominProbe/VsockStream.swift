import Glibc
import GuestClient
import POSIX

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
        let deadline = MonotonicClock.seconds() + connectSeconds
        while true {
            if let fd = try Self.attempt(socketPath: socketPath, port: port, answerSeconds: ioSeconds) {
                self.fd = fd
                break
            }
            guard MonotonicClock.seconds() < deadline else { throw .notListening(port: port, seconds: connectSeconds) }
            usleep(50_000)
        }
        setTimeouts(seconds: ioSeconds)
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    private static func attempt(socketPath: String, port: UInt32, answerSeconds: Double) throws(ProbeError) -> Int32? {
        do {
            return try VsockHostSocket.connect(socketPath: socketPath, port: port, answerSeconds: answerSeconds)
        } catch .socket(let call, let e) {
            throw .system(call, errno: e)
        } catch .handshake(let answer) {
            throw .connectRefused(port: port, answer: answer)
        } catch .timedOut(let what) {
            throw .timedOut(what)
        } catch {
            throw .system("\(error)", errno: EPROTO)  // connect throws only the three above
        }
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
            let n = bytes.withUnsafeBytes { raw in
                retryingEINTR { Glibc.send(fd, raw.baseAddress! + offset, range.upperBound - offset, Int32(MSG_NOSIGNAL)) }
            }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { throw .timedOut("the guest to take more bytes") }
            if n <= 0 { throw .system("send", errno: n < 0 ? errno : EPIPE) }
            offset += n
        }
    }

    /// One recv(2) into `buffer` from index `start`, at most `count` bytes; 0 at end of stream.
    func receive(into buffer: inout [UInt8], at start: Int = 0, count: Int? = nil) throws(ProbeError) -> Int {
        let wanted = min(count ?? buffer.count - start, buffer.count - start)
        let fd = fd
        let n = buffer.withUnsafeMutableBytes { raw in retryingEINTR { recv(fd, raw.baseAddress! + start, wanted, 0) } }
        if n >= 0 { return n }
        if errno == EAGAIN || errno == EWOULDBLOCK { throw .timedOut("bytes from the guest") }
        throw .system("recv", errno: errno)
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
