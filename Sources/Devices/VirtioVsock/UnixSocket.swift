import Glibc

/// Why the vsock device could not be set up, or had to stop.
public enum VsockError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Guest CIDs 0-2 are reserved (§5.10.4), and the upper 32 bits must be zero.
    case invalidGuestCID(UInt64)
    /// A Unix socket path must fit `sun_path` (107 bytes and a NUL).
    case socketPathTooLong(path: String)
    /// Something other than a socket is in the way at the listener's path; it is not removed.
    case notASocket(path: String)
    /// A socket call on `path` failed with `errno`.
    case socketCall(call: String, path: String, errno: Int32)
    /// The event loop would not watch the listener.
    case watch(path: String, reason: String)
    /// The driver offered an RX buffer too small for a packet header (§5.10.6.1).
    case rxBufferTooSmall(head: UInt16, length: Int)

    public var description: String {
        switch self {
        case .invalidGuestCID(let c): "vsock guest CID \(c) is reserved or too large (must be 3 ... 2^32-1)"
        case .socketPathTooLong(let p): "vsock socket path \(p) is longer than a Unix socket address allows"
        case .notASocket(let p): "vsock socket path \(p) exists and is not a socket"
        case .socketCall(let call, let p, let e): "vsock \(call) on \(p) failed: \(errnoName(e))"
        case .watch(let p, let reason): "vsock listener \(p) could not be watched: \(reason)"
        case .rxBufferTooSmall(let h, let l):
            "vsock RX buffer \(h) has \(l) writable bytes, less than a \(VsockHeader.size)-byte header"
        }
    }
}

func errnoName(_ e: Int32) -> String { "\(String(cString: strerror(e))) (errno \(e))" }

/// The outcome of one non-blocking socket call.
enum SocketIO<Value> {
    case done(Value)
    case wouldBlock
    case failed(Int32)
}

/// A non-blocking, close-on-exec Unix stream socket that owns its descriptor. Every call goes
/// through `retrying`, which repeats EINTR and returns errno; none of them blocks.
final class UnixSocket {
    private(set) var fd: Int32

    private init(fd: Int32) { self.fd = fd }
    deinit { close() }

    var isClosed: Bool { fd < 0 }

    func close() {
        guard fd >= 0 else { return }
        _ = Glibc.close(fd)  // EINTR on close still releases the descriptor on Linux.
        fd = -1
    }

    /// The `sockaddr_un` for `path`, or nil if it does not fit.
    private static func address(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return address
    }

    private static func newSocket(path: String) throws(VsockError) -> UnixSocket {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let (fd, e) = retrying { Int(socket(AF_UNIX, type, 0)) }
        guard fd >= 0 else { throw .socketCall(call: "socket", path: path, errno: e) }
        return UnixSocket(fd: Int32(fd))
    }

    /// Binds and listens at `path`, first removing a stale socket left there (a file that is
    /// not a socket is left alone and reported).
    static func listen(path: String, backlog: Int32 = 128) throws(VsockError) -> UnixSocket {
        guard var address = address(path) else { throw .socketPathTooLong(path: path) }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else { throw .notASocket(path: path) }
            guard unlink(path) == 0 || errno == ENOENT else { throw .socketCall(call: "unlink", path: path, errno: errno) }
        }
        let socket = try newSocket(path: path)
        let (bound, e) = retrying {
            Int(withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(socket.fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            })
        }
        guard bound == 0 else { throw .socketCall(call: "bind", path: path, errno: e) }
        let (listening, le) = retrying { Int(Glibc.listen(socket.fd, backlog)) }
        guard listening == 0 else {
            unlink(path)
            throw .socketCall(call: "listen", path: path, errno: le)
        }
        return socket
    }

    /// Connects to `path` without blocking. A Unix socket connects at once or fails
    /// (ENOENT, ECONNREFUSED, EAGAIN for a full backlog); there is no connect in progress.
    static func connect(path: String) -> Result<UnixSocket, VsockError> {
        guard var address = address(path) else { return .failure(.socketPathTooLong(path: path)) }
        let socket: UnixSocket
        do { socket = try newSocket(path: path) } catch { return .failure(error) }
        let (r, e) = retrying {
            Int(withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(socket.fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            })
        }
        guard r == 0 else { return .failure(.socketCall(call: "connect", path: path, errno: e)) }
        return .success(socket)
    }

    /// The next waiting connection, made non-blocking and close-on-exec. (Glibc's module does
    /// not export accept4, a GNU extension, so the flags are set after accept.)
    func accept() -> SocketIO<UnixSocket> {
        let (r, e) = Self.retrying { Int(Glibc.accept(fd, nil, nil)) }
        guard r >= 0 else { return e == EAGAIN || e == EWOULDBLOCK ? .wouldBlock : .failed(e) }
        let socket = UnixSocket(fd: Int32(r))
        let status = fcntl(socket.fd, F_GETFL)
        guard status >= 0, fcntl(socket.fd, F_SETFL, status | O_NONBLOCK) == 0,
              fcntl(socket.fd, F_SETFD, FD_CLOEXEC) == 0 else { return .failed(errno) }
        return .done(socket)
    }

    /// Up to `maxBytes` bytes; an empty array is EOF.
    func read(maxBytes: Int, peek: Bool = false) -> SocketIO<[UInt8]> {
        guard maxBytes > 0 else { return .done([]) }
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        let flags = peek ? Int32(MSG_PEEK) : 0
        let (n, e) = buffer.withUnsafeMutableBytes { raw in
            Self.retrying { recv(fd, raw.baseAddress, raw.count, flags) }
        }
        if n >= 0 {
            buffer.removeLast(maxBytes - n)
            return .done(buffer)
        }
        return e == EAGAIN || e == EWOULDBLOCK ? .wouldBlock : .failed(e)
    }

    /// Writes what the socket takes now; MSG_NOSIGNAL so a closed peer is EPIPE, not SIGPIPE.
    func write(_ bytes: UnsafeRawBufferPointer) -> SocketIO<Int> {
        guard bytes.count > 0 else { return .done(0) }
        let (n, e) = Self.retrying { send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
        if n >= 0 { return .done(n) }
        return e == EAGAIN || e == EWOULDBLOCK ? .wouldBlock : .failed(e)
    }

    func shutdownWrite() {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Runs a syscall until it is not interrupted; returns its result and, if negative, errno.
    private static func retrying(_ call: () -> Int) -> (Int, Int32) {
        while true {
            let r = call()
            if r >= 0 { return (r, 0) }
            let e = errno
            if e != EINTR { return (r, e) }
        }
    }
}
