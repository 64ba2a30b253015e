import Glibc
import POSIX

/// The host end of a guest vsock port, through the VMM's Unix socket (Firecracker's convention):
/// connect to the socket, send `CONNECT <port>\n`, read `OK <host port>\n`; after that the
/// stream is the guest's.
public enum VsockHostSocket {
    /// One attempt. Nil when the guest is not listening on `port` yet (the VMM resets the
    /// stream before its OK line) or the VMM's socket is not there yet; a connected descriptor
    /// otherwise, which the caller closes. The answer must come within `answerSeconds`: a VMM
    /// whose guest never answers the request must not hold the caller for ever.
    public static func connect(socketPath: String, port: UInt32, answerSeconds: Double) throws(GuestCallError) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .socket("socket", errno: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socketPath.utf8)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw .socket("socket path \(socketPath) is too long", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            // The VMM's socket may not exist yet while it starts.
            if e == ENOENT || e == ECONNREFUSED { return nil }
            throw .socket("connect \(socketPath)", errno: e)
        }
        let request = Array("CONNECT \(port)\n".utf8)
        do { try FileIO.sendAll(fd, request) } catch { close(fd); return nil }
        // Read the answer a byte at a time: nothing past its newline belongs to us.
        setReceiveTimeout(fd, seconds: answerSeconds)
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < 64 {
            let n = retryingEINTR { read(fd, &byte, 1) }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                close(fd)
                throw .timedOut("the VMM's answer to CONNECT \(port) (\(answerSeconds) s)")
            }
            if n <= 0 { close(fd); return nil }  // the device sent RST: nothing listens yet
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("OK ") else { close(fd); throw .handshake(text) }
        setReceiveTimeout(fd, seconds: 0)
        return fd
    }

    /// SO_RCVTIMEO: reads on `fd` fail with EAGAIN after `seconds` (0: wait for ever).
    public static func setReceiveTimeout(_ fd: Int32, seconds: Double) {
        setTimeout(fd, SO_RCVTIMEO, seconds: seconds)
    }

    /// SO_SNDTIMEO: a blocking send on `fd` fails with EAGAIN when it could send nothing for
    /// `seconds` (0: wait for ever).
    public static func setSendTimeout(_ fd: Int32, seconds: Double) {
        setTimeout(fd, SO_SNDTIMEO, seconds: seconds)
    }

    private static func setTimeout(_ fd: Int32, _ option: Int32, seconds: Double) {
        let whole = max(seconds, 0)
        var limit = timeval(tv_sec: Int(whole), tv_usec: Int((whole - Double(Int(whole))) * 1e6))
        // A positive limit below a microsecond would read as 0, which means no limit.
        if whole > 0 && limit.tv_sec == 0 && limit.tv_usec == 0 { limit.tv_usec = 1 }
        setsockopt(fd, SOL_SOCKET, option, &limit, socklen_t(MemoryLayout<timeval>.size))
    }
}
