import CTLS
import Glibc
import POSIX

/// A TLS client over a TCP socket its caller connected (OpenSSL 3, docs/tls.md). It checks the
/// server's certificate chain against a trust setting and the certificate's names against
/// `serverName` (RFC 6125), sends SNI for a DNS name, and offers ALPN "http/1.1".
///
/// Blocking with deadlines, like the relay: the socket is made non-blocking here and every
/// OpenSSL call that wants the socket is waited for with poll(2) until a monotonic deadline
/// (`MonotonicClock`). `~Copyable`: one owner frees the OpenSSL connection, in `deinit`; it
/// may move between threads but not be used from two at once (an SSL object is not). The
/// socket stays the caller's: it is left open, non-blocking, for the caller to close after.
public struct TLSClient: ~Copyable, @unchecked Sendable {
    private let connection: OpaquePointer
    /// The socket, for the caller's poll(2) loop (see `hasBufferedBytes`).
    public let fd: Int32
    public let serverName: String
    private var handshakeDone = false
    /// A fatal error happened: no OpenSSL call but free is allowed, SSL_shutdown included.
    private var failed = false
    private var readEnded = false
    private var shutdownSent = false
    /// Whether the read side ended with the peer's close_notify, rather than a bare TCP end of
    /// file, which a truncating attacker can also cause (RFC 8446 §6.1).
    public private(set) var closeNotifyReceived = false

    /// `serverName`: a DNS name, or an IPv4 or IPv6 address literal (without brackets), which
    /// is matched against the certificate's IP addresses and not sent as SNI.
    public init(socket fd: Int32, serverName: String, trust: TLSTrust = .system) throws(TLSError) {
        try self.init(socket: fd, serverName: serverName, context: TLSContext.shared(for: trust))
    }

    public init(socket fd: Int32, serverName: String, context: TLSContext) throws(TLSError) {
        // An empty name would ask SSL_set1_host(3) to check no name at all; a NUL would cut it.
        guard !serverName.isEmpty, !serverName.utf8.contains(0) else { throw .setup("bad server name \"\(serverName)\"") }
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw .system(.handshake, SystemError("fcntl", subject: "O_NONBLOCK"))
        }
        var failure = ctls_failure()
        guard let made = ctls_connection_new(context.pointer, fd, serverName, &failure) else {
            throw .setup("\(serverName): \(failure.text)")
        }
        connection = made
        self.fd = fd
        self.serverName = serverName
    }

    deinit { ctls_connection_free(connection) }

    /// The TLS handshake, done by `deadline` (monotonic nanoseconds). A certificate that does
    /// not verify is `.certificateVerifyFailed`, with OpenSSL's reason ("hostname mismatch").
    public mutating func handshake(deadline: UInt64) throws(TLSError) {
        guard !handshakeDone else { return }
        guard !failed else { throw .unusable }
        while true {
            var failure = ctls_failure()
            let result = ctls_connect(connection, &failure)
            if result == 1 { break }
            switch result {
            case CTLS_WANT_READ: try wait(for: POLLIN, .handshake, until: deadline)
            case CTLS_WANT_WRITE: try wait(for: POLLOUT, .handshake, until: deadline)
            case CTLS_FAILED where failure.verify_result != 0:
                failed = true
                throw .certificateVerifyFailed(reason: failure.text, serverName: serverName)
            default: throw fail(.handshake, result, failure)
            }
        }
        handshakeDone = true
    }

    /// Up to `buffer.count` bytes (at least one asked) by `deadline`: the count read, 0 once the
    /// peer has ended the stream (see `closeNotifyReceived`). The handshake first if not done.
    public mutating func read(into buffer: UnsafeMutableRawBufferPointer, deadline: UInt64) throws(TLSError) -> Int {
        precondition(buffer.count > 0, "TLSClient.read: an empty buffer")
        try handshake(deadline: deadline)
        if readEnded { return 0 }
        guard !failed else { throw .unusable }
        while true {
            var failure = ctls_failure()
            let result = ctls_read(connection, buffer.baseAddress, Int32(clamping: buffer.count), &failure)
            if result > 0 { return Int(result) }
            switch result {
            case CTLS_WANT_READ: try wait(for: POLLIN, .read, until: deadline)
            case CTLS_WANT_WRITE: try wait(for: POLLOUT, .read, until: deadline)
            case CTLS_CLOSED:
                readEnded = true
                closeNotifyReceived = true
                return 0
            case CTLS_EOF:
                // OpenSSL counts an end without close_notify as fatal: no SSL_shutdown after it.
                readEnded = true
                failed = true
                return 0
            default: throw fail(.read, result, failure)
            }
        }
    }

    /// Up to `max` (> 0) bytes by `deadline`; empty once the peer has ended the stream.
    public mutating func read(upTo max: Int, deadline: UInt64) throws(TLSError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: max)
        let result = bytes.withUnsafeMutableBytes { raw in
            Result { () throws(TLSError) -> Int in try read(into: raw, deadline: deadline) }
        }
        let count = try result.get()
        bytes.removeLast(bytes.count - count)
        return bytes
    }

    /// All of `bytes`, sent by `deadline`. The handshake first if not done.
    public mutating func write(_ bytes: UnsafeRawBufferPointer, deadline: UInt64) throws(TLSError) {
        try handshake(deadline: deadline)
        guard !failed else { throw .unusable }
        var offset = 0
        while offset < bytes.count {
            var failure = ctls_failure()
            let result = ctls_write(connection, bytes.baseAddress! + offset, Int32(clamping: bytes.count - offset), &failure)
            if result > 0 {
                offset += Int(result)
                continue
            }
            guard result == CTLS_WANT_READ || result == CTLS_WANT_WRITE else { throw fail(.write, result, failure) }
            do {
                try wait(for: result == CTLS_WANT_READ ? POLLIN : POLLOUT, .write, until: deadline)
            } catch {
                // Part of `bytes` may have gone: the stream's position is lost.
                failed = true
                throw error
            }
        }
    }

    /// All of `bytes`, sent by `deadline`.
    public mutating func write(_ bytes: some Collection<UInt8>, deadline: UInt64) throws(TLSError) {
        let contiguous = ContiguousArray(bytes)
        let result = contiguous.withUnsafeBytes { raw in
            Result { () throws(TLSError) in try write(raw, deadline: deadline) }
        }
        try result.get()
    }

    /// Whether OpenSSL holds decrypted bytes that `read` returns without waiting for the socket:
    /// a poll(2) loop must read these first, since the socket will not show them as readable.
    /// Read-ahead is off (OpenSSL's default), so undecrypted bytes stay in the kernel, where
    /// poll(2) sees them.
    public var hasBufferedBytes: Bool { !failed && ctls_pending(connection) > 0 }

    /// The ALPN protocol the server chose ("http/1.1"), nil when it chose none.
    public var negotiatedProtocol: String? {
        var name = [CChar](repeating: 0, count: 256)
        guard ctls_alpn_selected(connection, &name, name.count) == 1 else { return nil }
        return String(decoding: name.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The protocol version in use, "TLSv1.3" or "TLSv1.2".
    public var protocolVersion: String { String(cString: ctls_version(connection)) }

    /// Sends close_notify once if the socket takes it now, without waiting for it to leave or
    /// for the peer's (RFC 8446 §6.1 lets the sender close at once): best effort, never throws.
    public mutating func shutdown() {
        guard handshakeDone, !failed, !shutdownSent else { return }
        shutdownSent = true
        ctls_shutdown(connection)
    }

    /// The error for `result` (a CTLS_* code other than the wants) in `step`; the connection is
    /// unusable after it.
    private mutating func fail(_ step: TLSStep, _ result: Int32, _ failure: ctls_failure) -> TLSError {
        failed = true
        switch result {
        case CTLS_CLOSED, CTLS_EOF: return .closedByPeer(step)
        case CTLS_SYSCALL: return .system(step, SystemError("socket", errno: failure.sys_errno))
        default: return .protocolFailure(step, failure.text)
        }
    }

    /// poll(2) for `events` on the socket until `deadline`; `.timedOut(step)` once it passes.
    /// A hang-up or error counts as ready: the next OpenSSL call reports it.
    private func wait(for events: Int32, _ step: TLSStep, until deadline: UInt64) throws(TLSError) {
        while true {
            let left = MonotonicClock.pollTimeout(until: deadline)
            guard left > 0 else { throw .timedOut(step) }
            var entry = pollfd(fd: fd, events: Int16(events), revents: 0)
            let ready = poll(&entry, 1, left)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw .system(step, SystemError("poll")) }
        }
    }
}
