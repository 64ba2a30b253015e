import CGuestSys
import Doors
import Glibc
import POSIX

/// One of the guest's egress listeners and the host port its connections go to.
public struct EgressRoute: Equatable, Sendable {
    /// For log lines: "proxy" or "brain".
    public var name: String
    /// The IPv4 loopback address and port momin-init listens at.
    public var address: String
    public var listenPort: UInt16
    /// The host's vsock port each connection is relayed to.
    public var hostPort: UInt32

    public init(name: String, address: String, listenPort: UInt16, hostPort: UInt32) {
        self.name = name
        self.address = address
        self.listenPort = listenPort
        self.hostPort = hostPort
    }

    /// 127.0.0.1:3128 to the host's port 1026: what the proxy variables point at.
    public static let proxy = EgressRoute(name: "proxy", address: EgressProtocol.proxyAddress,
                                          listenPort: EgressProtocol.proxyListenPort, hostPort: EgressProtocol.proxyPort)
    /// 127.0.0.2:80 to the host's port 1027: `http://brain.momin/`.
    public static let brain = EgressRoute(name: "brain", address: EgressProtocol.brainAddress,
                                          listenPort: EgressProtocol.brainListenPort, hostPort: EgressProtocol.brainPort)
}

/// Settings and limits of the egress relay. The defaults are what momin-init uses.
public struct EgressRelayConfiguration: Sendable {
    /// Connections relayed at once, over all routes; one more is reset at once.
    public var maxConnections = EgressProtocol.maxGuestConnections
    /// Bytes buffered per direction of a connection (two buffers per connection).
    public var bufferSize = 64 << 10
    /// Stack of each connection's thread: the copy loop keeps its buffers on the heap.
    public var threadStackSize = 256 << 10
    /// Where the relay reports trouble it cannot tell a client about (one line, no newline).
    public var log: @Sendable (String) -> Void = { _ in }

    public init() {}
}

/// The guest end of egress (docs/egress.md): each TCP connection accepted on a loopback
/// listener gets a new stream connection to the host, and the bytes are copied both ways as
/// they come. Nothing is parsed here: the host reads the request and judges it.
///
/// Each connection runs on its own thread, at most `maxConnections` at once, with one bounded
/// buffer per direction: a side that does not read holds up the other (TCP's own flow control,
/// end to end). An end of stream is passed on as a half-close (shutdown(2) SHUT_WR, the FIN of
/// RFC 9293 §3.6) and the other direction goes on; the connection ends when both directions
/// have. An error on either side (a reset, a write to a side that closed) ends both at once:
/// the client is reset (SO_LINGER of 0, socket(7)), so that a cut-off reply is never taken for a
/// complete one, and the host's connection is closed. There is no idle timeout. Writes use
/// MSG_NOSIGNAL, so a peer that went away is EPIPE, never a signal.
public final class EgressRelay: Sendable {
    /// VMADDR_CID_HOST: the host, as the guest's vsock addresses it.
    public static let hostCID: UInt32 = 2

    public let configuration: EgressRelayConfiguration
    private let connectToHost: @Sendable (UInt32) -> Int32
    private let connectionCount = Counter()

    /// A relay that reaches the host through `connectToHost(port)`: a connected stream socket's
    /// descriptor, or -1 with errno set. Tests pass socketpairs or local TCP sockets.
    public init(configuration: EgressRelayConfiguration = EgressRelayConfiguration(),
                connectToHost: @escaping @Sendable (UInt32) -> Int32) {
        self.configuration = configuration
        self.connectToHost = connectToHost
    }

    /// The relay momin-init runs: each connection connects over vsock to the host (CID 2) at
    /// its route's port.
    public convenience init(configuration: EgressRelayConfiguration = EgressRelayConfiguration()) {
        self.init(configuration: configuration) { port in guest_vsock_connect(EgressRelay.hostCID, port) }
    }

    /// Connections being relayed now.
    public var activeConnections: Int { connectionCount.value }

    /// A TCP socket listening at `address` (dotted IPv4) and `port`, backlog 128.
    public static func listen(address: String, port: UInt16) throws(SetupError) -> Int32 {
        let fd = guest_tcp4_listen(address, port, 128)
        guard fd >= 0 else { throw SetupError(SystemError("listen on", subject: "\(address):\(port)")) }
        return fd
    }

    /// Relays one accepted connection on the calling thread, and closes it.
    public func serveConnection(_ fd: Int32, route: EgressRoute) {
        let client = Descriptor(fd)
        guard connectionCount.increment(limit: configuration.maxConnections) else {
            refuse(client, route)
            return
        }
        defer { connectionCount.decrement() }
        relay(client, route)
    }

    /// Relays one accepted connection on a new thread; it is closed when that ends. Over the
    /// limit, or when no thread can be started, it is reset at once.
    public func startConnection(_ fd: Int32, route: EgressRoute) {
        guard connectionCount.increment(limit: configuration.maxConnections) else {
            refuse(Descriptor(fd), route)
            return
        }
        do throws(SystemError) {
            try POSIXThread.detach(name: "egress-" + route.name, stackSize: configuration.threadStackSize) { [self] in
                defer { self.connectionCount.decrement() }
                self.relay(Descriptor(fd), route)
            }
        } catch {
            connectionCount.decrement()
            configuration.log("egress \(route.name): cannot start a connection thread: \(error)")
            reset(Descriptor(fd))
        }
    }

    /// Accepts connections on a listening socket forever, each relayed on its own thread.
    /// Transient failures (EMFILE, ENOMEM, an aborted connection) are logged and retried.
    public func acceptForever(listener: Int32, route: EgressRoute) -> Never {
        AcceptLoop.run(listener: listener, name: "egress \(route.name)", log: configuration.log) { startConnection($0, route: route) }
    }

    /// Runs `acceptForever` on a thread of its own.
    public func startAccepting(listener: Int32, route: EgressRoute) throws(SetupError) {
        try AcceptLoop.detach(thread: "egress-accept") { [self] in self.acceptForever(listener: listener, route: route) }
    }

    // MARK: - One connection

    private func relay(_ client: Descriptor, _ route: EgressRoute) {
        let fd = connectToHost(route.hostPort)
        guard fd >= 0 else {
            let error = errno
            configuration.log("egress \(route.name): the host serves no egress on vsock port \(route.hostPort): \(describeErrno(error))")
            reset(client)
            return
        }
        let host = Descriptor(fd)
        defer { host.close() }
        if copyBothWays(client: client, host: host) {
            client.close()
        } else {
            reset(client)
        }
    }

    /// Over the limit: log, then reset without reading.
    private func refuse(_ client: Descriptor, _ route: EgressRoute) {
        configuration.log("egress \(route.name): refused a connection: \(configuration.maxConnections) are being relayed already")
        reset(client)
    }

    /// Closes with SO_LINGER {on, 0}: a TCP peer gets a reset, not an end of stream (socket(7)).
    private func reset(_ client: Descriptor) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(client.raw, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        client.close()
    }

    /// Copies until both directions have ended (true), or until an error on either side (false).
    private func copyBothWays(client: Descriptor, host: Descriptor) -> Bool {
        var up = Direction(from: client.raw, to: host.raw, capacity: configuration.bufferSize)
        var down = Direction(from: host.raw, to: client.raw, capacity: configuration.bufferSize)
        while !(up.isOver && down.isOver) {
            // A side with nothing to wait for is left out (fd -1): poll(2) would report its
            // POLLHUP over and over while the other direction waits.
            let clientEvents = (up.wantsRead ? POLLIN : 0) | (down.wantsWrite ? POLLOUT : 0)
            let hostEvents = (down.wantsRead ? POLLIN : 0) | (up.wantsWrite ? POLLOUT : 0)
            var descriptors = [
                pollfd(fd: clientEvents == 0 ? -1 : client.raw, events: Int16(clientEvents), revents: 0),
                pollfd(fd: hostEvents == 0 ? -1 : host.raw, events: Int16(hostEvents), revents: 0),
            ]
            if poll(&descriptors, 2, -1) < 0 {
                if errno == EINTR { continue }
                return false
            }
            let clientReady = Int32(descriptors[0].revents)
            let hostReady = Int32(descriptors[1].revents)
            if (clientReady | hostReady) & POLLNVAL != 0 { return false }
            guard up.advance(sourceReady: clientReady, sinkReady: hostReady),
                  down.advance(sourceReady: hostReady, sinkReady: clientReady) else { return false }
        }
        return true
    }
}

/// One direction of a relayed connection: bytes read from `source` wait in `buffer` until all
/// are written to `sink`; only then is `source` read again.
private struct Direction {
    let source: Int32
    let sink: Int32
    var buffer: [UInt8]
    var start = 0
    var end = 0
    /// `source` reached its end of stream.
    var sourceEnded = false
    /// The end was passed on: `sink` was shut down for writing.
    var isOver = false

    init(from source: Int32, to sink: Int32, capacity: Int) {
        self.source = source
        self.sink = sink
        buffer = [UInt8](repeating: 0, count: capacity)
    }

    var wantsRead: Bool { !sourceEnded && start == end }
    var wantsWrite: Bool { start < end }

    /// One read or write as poll(2) allows; false on an error from either side. POLLHUP and
    /// POLLERR count as ready: the call then reports the end or the error.
    mutating func advance(sourceReady: Int32, sinkReady: Int32) -> Bool {
        let done = POLLHUP | POLLERR
        if wantsRead && sourceReady & (POLLIN | done) != 0 {
            let n = buffer.withUnsafeMutableBytes { bytes in
                retryingEINTR { recv(source, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT)) }
            }
            if n > 0 {
                start = 0
                end = n
            } else if n == 0 {
                sourceEnded = true
            } else if errno != EAGAIN && errno != EWOULDBLOCK {
                return false
            }
        } else if wantsWrite && sinkReady & (POLLOUT | done) != 0 {
            let offset = start
            let n = buffer.withUnsafeBytes { bytes in
                retryingEINTR { send(sink, bytes.baseAddress! + offset, end - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            }
            if n > 0 {
                start += n
            } else if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK {
                return false
            }
        }
        if sourceEnded && start == end && !isOver {
            // RFC 9293 §3.6: the FIN says this side is done sending; the other may go on.
            guard shutdown(sink, Int32(SHUT_WR)) == 0 else { return false }
            isOver = true
        }
        return true
    }
}
