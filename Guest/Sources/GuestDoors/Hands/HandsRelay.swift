import CGuestSys
import Doors
import Glibc
import POSIX

/// Settings and limits of the hands relay. The defaults are what momin-init uses.
public struct HandsRelayConfiguration: Sendable {
    /// Calls relayed at once; one more is answered `failed` at once and closed.
    public var maxCalls = 64
    /// Where the relay reports trouble it cannot tell a caller about (one line, no newline).
    public var log: @Sendable (String) -> Void = { _ in }

    public init() {}
}

/// The guest end of hands calls (docs/hands.md): a process in the guest connects to the local
/// socket and writes one call frame; the relay checks it, connects to the host's hands port,
/// passes the frame on, and passes the host's one reply frame back. Each call runs on its own
/// thread, at most `maxCalls` at once.
///
/// What the host never sees: a malformed call (a bad header, a payload `decodeCall` refuses) is
/// answered `failed(invalid, ...)` here. When the host cannot be reached, or breaks the
/// exchange, the caller gets `failed(failed, ...)`. There is no timeout on the host's side (a
/// door receive or a wait may block as long as it asks), but a caller that hangs up ends the
/// call: the host connection is closed at once. All writes use MSG_NOSIGNAL, so a peer that
/// has gone away is EPIPE, never a signal.
public final class HandsRelay: Sendable {
    /// Where momin-init listens for calls (the `hands` client's default).
    public static let socketPath = "/run/momin/hands.sock"
    /// VMADDR_CID_HOST: the host, as the guest's vsock addresses it.
    public static let hostCID: UInt32 = 2

    public let configuration: HandsRelayConfiguration
    private let connectToHost: @Sendable () -> Int32
    private let callCount = Counter()

    /// A relay that reaches the host through `connectToHost`: a connected stream socket's
    /// descriptor, or -1 with errno set. Tests pass one end of a socketpair.
    public init(configuration: HandsRelayConfiguration = HandsRelayConfiguration(), connectToHost: @escaping @Sendable () -> Int32) {
        self.configuration = configuration
        self.connectToHost = connectToHost
    }

    /// The relay momin-init runs: each call connects over vsock to the host (CID 2) at `port`.
    public convenience init(port: UInt32, configuration: HandsRelayConfiguration = HandsRelayConfiguration()) {
        self.init(configuration: configuration) { guest_vsock_connect(HandsRelay.hostCID, port) }
    }

    /// Calls being relayed now.
    public var activeCalls: Int { callCount.value }

    /// The listening socket at `path` (backlog 64, mode 0666: any process in the guest may call;
    /// the host's policy is the gate). Missing directories above it are made with mode 0755; a
    /// socket left there from before is replaced. `path` is absolute.
    public static func listen(path: String) throws(SetupError) -> Int32 {
        var parent = ""
        for component in path.split(separator: "/").dropLast() {
            parent += "/" + component
            if mkdir(parent, 0o755) != 0 && errno != EEXIST {
                throw SetupError(SystemError("mkdir", subject: parent))
            }
        }
        let fd = guest_unix_listen(path, 0o666, 64)
        guard fd >= 0 else { throw SetupError(SystemError("listen on", subject: path)) }
        return fd
    }

    /// Relays one call on a connected stream socket on the calling thread, and closes it.
    public func serveCall(_ fd: Int32) {
        let caller = Descriptor(fd)
        guard callCount.increment(limit: configuration.maxCalls) else {
            refuse(caller)
            return
        }
        defer { callCount.decrement() }
        relay(caller)
    }

    /// Relays one call on a new thread; the socket is closed when that ends. Over the limit, or
    /// when no thread can be started, the caller is answered at once.
    public func startCall(_ fd: Int32) {
        guard callCount.increment(limit: configuration.maxCalls) else {
            refuse(Descriptor(fd))
            return
        }
        do throws(SystemError) {
            try POSIXThread.detach(name: "hands-relay") { [self] in
                defer { self.callCount.decrement() }
                self.relay(Descriptor(fd))
            }
        } catch {
            callCount.decrement()
            configuration.log("hands: cannot start a call thread: \(error)")
            answer(Descriptor(fd), .failed(.failed, "momin-init: cannot start a thread for the call: \(error)"))
        }
    }

    /// Accepts callers on a listening socket forever, each relayed on its own thread.
    /// Transient failures (EMFILE, ENOMEM, an aborted connection) are logged and retried.
    public func acceptForever(listener: Int32) -> Never {
        AcceptLoop.run(listener: listener, name: "hands", log: configuration.log) { startCall($0) }
    }

    /// Runs `acceptForever` on a thread of its own.
    public func startAccepting(listener: Int32) throws(SetupError) {
        try AcceptLoop.detach(thread: "hands-accept") { [self] in self.acceptForever(listener: listener) }
    }

    // MARK: - One call

    private func relay(_ caller: Descriptor) {
        defer { caller.close() }
        // A caller gone before its reply has nobody to tell.
        guard let reply = exchange(caller) else { return }
        _ = send(reply, to: caller.raw, watching: nil)
    }

    /// Over the limit: the failure, best effort, without reading the call; then close.
    private func refuse(_ caller: Descriptor) {
        let message = "momin-init: too many hands calls at once"
        let bytes = HandsCallCodec.encode(HandsReply.failed(.failed, message))
        _ = bytes.withUnsafeBytes { Glibc.send(caller.raw, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        caller.close()
        configuration.log("hands: refused a call: \(configuration.maxCalls) are being relayed already")
    }

    /// A reply made here, written with a blocking send (the caller's socket), then close.
    private func answer(_ caller: Descriptor, _ reply: HandsReply) {
        _ = send(HandsCallCodec.encode(reply), to: caller.raw, watching: nil)
        caller.close()
    }

    /// The reply frame for the caller: the host's, or one made here. nil when there is nobody
    /// to answer (the caller hung up, or connected and closed without a call).
    private func exchange(_ caller: Descriptor) -> [UInt8]? {
        func failure(_ code: HandsFailure, _ message: String) -> [UInt8] {
            HandsCallCodec.encode(HandsReply.failed(code, boundedMessage(message)))
        }

        // The call: one frame, checked as the host would check it.
        var header = [UInt8](repeating: 0, count: HandsCallProtocol.headerSize)
        switch receive(caller.raw, into: &header, watching: nil) {
        case .done: break
        case .ended(0), .callerGone: return nil
        case .ended(let count): return failure(.invalid, "the call ends after \(count) of its \(header.count) header bytes")
        case .failed(let error):
            configuration.log("hands: reading a call: \(SystemError("recv", errno: error))")
            return nil
        }
        let announced: (kind: HandsCallKind, length: Int)
        do throws(HandsCallError) {
            announced = try HandsCallCodec.payloadLength(header: header)
        } catch {
            return failure(.invalid, error.description)
        }
        let (kind, length) = announced
        var payload = [UInt8](repeating: 0, count: length)
        switch receive(caller.raw, into: &payload, watching: nil) {
        case .done: break
        case .callerGone: return nil
        case .ended(let count): return failure(.invalid, "the call ends after \(count) of its \(length) payload bytes")
        case .failed(let error):
            configuration.log("hands: reading a call: \(SystemError("recv", errno: error))")
            return nil
        }
        do throws(HandsCallError) {
            _ = try HandsCallCodec.decodeCall(kind: kind, payload: payload)
        } catch {
            return failure(.invalid, error.description)
        }

        // The host: the frame as it came, then exactly one reply frame.
        let fd = connectToHost()
        guard fd >= 0 else {
            let error = errno
            return failure(.failed, "the host serves no hands calls for this VM (\(String(cString: strerror(error))))")
        }
        let host = Descriptor(fd)
        defer { host.close() }
        switch send(header + payload, to: host.raw, watching: caller.raw) {
        case .done: break
        case .callerGone: return nil
        case .ended, .failed(EPIPE), .failed(ECONNRESET):
            return failure(.failed, "momin-init: the host closed the hands connection before taking the call")
        case .failed(let error):
            return failure(.failed, "momin-init: sending the call to the host: \(String(cString: strerror(error)))")
        }

        var replyHeader = [UInt8](repeating: 0, count: HandsCallProtocol.headerSize)
        switch receive(host.raw, into: &replyHeader, watching: caller.raw) {
        case .done: break
        case .callerGone: return nil
        case .ended(0): return failure(.failed, "momin-init: the host closed the hands connection without a reply")
        case .ended(let count): return failure(.failed, "momin-init: the host's reply ends after \(count) of its \(replyHeader.count) header bytes")
        case .failed(let error):
            return failure(.failed, "momin-init: reading the host's reply: \(String(cString: strerror(error)))")
        }
        let replyLength: Int
        do throws(HandsCallError) {
            let (replyKind, length) = try HandsCallCodec.payloadLength(header: replyHeader)
            guard replyKind == .ok || replyKind == .failed else {
                return failure(.failed, "momin-init: the host answered with a \(replyKind) frame, not a reply")
            }
            replyLength = length
        } catch {
            return failure(.failed, "momin-init: the host's reply: \(error)")
        }
        var replyPayload = [UInt8](repeating: 0, count: replyLength)
        switch receive(host.raw, into: &replyPayload, watching: caller.raw) {
        case .done: break
        case .callerGone: return nil
        case .ended(let count): return failure(.failed, "momin-init: the host's reply ends after \(count) of its \(replyLength) payload bytes")
        case .failed(let error):
            return failure(.failed, "momin-init: reading the host's reply: \(String(cString: strerror(error)))")
        }
        return replyHeader + replyPayload
    }

    // MARK: - Socket I/O

    private enum Transfer {
        case done
        /// End of stream after this many bytes.
        case ended(Int)
        case failed(Int32)
        /// The watched caller hung up first.
        case callerGone
    }

    /// Reads exactly `buffer.count` bytes from `fd`. With a `watching` caller, waits in poll(2)
    /// so that the caller hanging up (POLLHUP: it closed its socket; a half-close is not a
    /// hang-up) ends the wait.
    private func receive(_ fd: Int32, into buffer: inout [UInt8], watching caller: Int32?) -> Transfer {
        var filled = 0
        while filled < buffer.count {
            if let caller, !waitFor(fd, POLLIN, watching: caller) { return .callerGone }
            let flags = caller == nil ? 0 : Int32(MSG_DONTWAIT)
            let start = filled
            let n = buffer.withUnsafeMutableBytes { bytes in
                retryingEINTR { recv(fd, bytes.baseAddress! + start, bytes.count - start, flags) }
            }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { continue }
                return .failed(errno)
            }
            if n == 0 { return .ended(filled) }
            filled += n
        }
        return .done
    }

    /// Writes all of `bytes` to `fd`, watching `caller` as `receive` does.
    private func send(_ bytes: [UInt8], to fd: Int32, watching caller: Int32?) -> Transfer {
        var offset = 0
        while offset < bytes.count {
            if let caller, !waitFor(fd, POLLOUT, watching: caller) { return .callerGone }
            let flags = Int32(MSG_NOSIGNAL) | (caller == nil ? 0 : Int32(MSG_DONTWAIT))
            let start = offset
            let n = bytes.withUnsafeBytes { all in
                retryingEINTR { Glibc.send(fd, all.baseAddress! + start, all.count - start, flags) }
            }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { continue }
                return .failed(errno)
            }
            if n == 0 { return .ended(offset) }
            offset += n
        }
        return .done
    }

    /// Waits until `fd` is ready for `events` (or has an error or hang-up of its own, which the
    /// next call reports); false when `caller` hung up first.
    private func waitFor(_ fd: Int32, _ events: Int32, watching caller: Int32) -> Bool {
        // The caller is watched with no events: poll(2) reports POLLHUP and POLLERR anyway, and
        // bytes it sends after its call do not wake the wait.
        var descriptors = [pollfd(fd: fd, events: Int16(events), revents: 0), pollfd(fd: caller, events: 0, revents: 0)]
        while true {
            let ready = poll(&descriptors, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return true  // the next call on `fd` reports what is wrong
            }
            if Int32(descriptors[1].revents) & (POLLHUP | POLLERR | POLLNVAL) != 0 { return false }
            if descriptors[0].revents != 0 { return true }
        }
    }
}
