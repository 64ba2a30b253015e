import Glibc

/// A packet on its way to the guest.
struct VsockPacket: Sendable {
    var header: VsockHeader
    var payload: [UInt8]
}

/// A connection's identity: the host-side and guest-side ports (the CIDs are fixed).
struct VsockConnectionKey: Hashable, Sendable {
    let hostPort: UInt32
    let guestPort: UInt32
}

/// The host side of the vsock device, over Unix sockets (Firecracker's convention): a listener
/// at `socketPath` for host-initiated connections (`CONNECT <port>\n`), `<socketPath>_<port>`
/// for guest-initiated ones. It turns guest packets into socket I/O through `VsockConnection`s,
/// and host readiness into packets for the guest, which the device pulls one RX buffer at a
/// time with `nextPacketForGuest`. Nothing is read from a host socket until there is an RX
/// buffer to put it in.
///
/// Not thread-safe: the device calls it under its lock. Every socket call is non-blocking.
/// `EventRegistry` handlers must not run inside `watch`/`change`/`unwatch` (they run on the
/// event loop, which calls back through the device's lock).
final class VsockMuxer {
    /// Our receive buffer per connection (buf_alloc): guest bytes the host socket has not yet
    /// taken are queued up to this, never more.
    static let bufferSize: UInt32 = 256 * 1024
    /// Host ports for host-initiated connections start here (as in Firecracker), far above
    /// the ports guests usually listen on.
    static let firstHostPort: UInt32 = 1 << 30
    /// RSTs for packets that name no connection, waiting for RX buffers; more are dropped
    /// (an RST is advice, and a guest that never posts RX buffers must not grow this).
    static let maximumOrphanResets = 256

    let guestCID: UInt64
    let socketPath: String
    let maxConnections: Int
    /// How long a host-initiated connection waits for the guest's RESPONSE before it is reset
    /// (Firecracker waits 2 s; the slack is for the nested rig, ~50× slower than hardware).
    /// The host client sees its socket close before `OK`, as when nothing listens.
    let requestTimeout: Double
    private let events: any EventRegistry

    private final class HostLink {
        var connection: VsockConnection
        var socket: UnixSocket?
        let token: UInt64
        /// What the event loop watches the socket for; nil when not watched at all.
        var watched: Readiness?

        init(connection: VsockConnection, socket: UnixSocket, token: UInt64, watched: Readiness?) {
            self.connection = connection
            self.socket = socket
            self.token = token
            self.watched = watched
        }
    }

    /// An accepted host socket that has not finished its CONNECT line.
    private final class PendingHost {
        let socket: UnixSocket
        let token: UInt64
        var line: [UInt8] = []
        init(socket: UnixSocket, token: UInt64) {
            self.socket = socket
            self.token = token
        }
    }

    private enum Role {
        case listener
        case pending
        case connection(VsockConnectionKey)
    }

    private var listener: UnixSocket?
    private var listenerPaused = false
    private var dispatch: (@Sendable (Int32, UInt64, Readiness) -> Void)?
    /// How a connection's timer reaches us (through the device's lock): its key and token.
    private var expire: (@Sendable (VsockConnectionKey, UInt64) -> Void)?
    /// Whether the guest's driver is up; host connections are refused while it is not.
    private(set) var isActive = false

    /// Each watched descriptor's current owner. The token tells a stale handler (for a closed
    /// descriptor whose number was reused) from a current one.
    private var owners: [Int32: (token: UInt64, role: Role)] = [:]
    private var nextToken: UInt64 = 1
    private var links: [VsockConnectionKey: HostLink] = [:]
    private var pendingHosts: [Int32: PendingHost] = [:]
    /// Connections with something for the guest, in turn.
    private var ready: [VsockConnectionKey] = []
    private var queued: Set<VsockConnectionKey> = []
    private var orphanResets: [VsockHeader] = []
    private var hostPortUse: [UInt32: Int] = [:]
    private var nextHostPort = firstHostPort

    init(guestCID: UInt64, socketPath: String, maxConnections: Int, requestTimeout: Double,
         events: any EventRegistry) throws(VsockError) {
        self.guestCID = guestCID
        self.socketPath = socketPath
        self.maxConnections = max(maxConnections, 0)
        self.requestTimeout = requestTimeout
        self.events = events
        listener = try UnixSocket.listen(path: socketPath)
    }

    deinit { close() }

    /// Starts watching the listener; `dispatch` is how the event loop reaches us (through the
    /// device's lock) with a descriptor, its token and its readiness.
    func start(dispatch: @escaping @Sendable (Int32, UInt64, Readiness) -> Void,
               expire: @escaping @Sendable (VsockConnectionKey, UInt64) -> Void) throws(VsockError) {
        self.dispatch = dispatch
        self.expire = expire
        guard let listener else { return }
        let token = newToken()
        owners[listener.fd] = (token, .listener)
        do { try events.watch(listener.fd, for: .readable, handler: handler(listener.fd, token)) } catch {
            throw .watch(path: socketPath, reason: String(describing: error))
        }
    }

    var connectionCount: Int { links.count }
    var pendingHostCount: Int { pendingHosts.count }
    var hasPacketForGuest: Bool { !orphanResets.isEmpty || !ready.isEmpty }

    func setActive(_ active: Bool) { isActive = active }

    /// The connection table, one line each (at most `limit`), for the VMM's state dump.
    func diagnostics(limit: Int = 64) -> [String] {
        var lines = ["\(links.count) connections, \(pendingHosts.count) host sockets before CONNECT, "
                     + "\(ready.count) waiting for RX buffers, \(orphanResets.count) RSTs owed, listener "
                     + (listener == nil ? "closed" : listenerPaused ? "paused" : "watched")]
        for (key, link) in links.sorted(by: { ($0.key.hostPort, $0.key.guestPort) < ($1.key.hostPort, $1.key.guestPort) }).prefix(limit) {
            let c = link.connection
            lines.append("  host \(key.hostPort) guest \(key.guestPort): \(c.state), \(c.debugSummary), socket "
                         + (link.socket == nil ? "closed" : "watched for \(link.watched.map { "\($0.rawValue)" } ?? "nothing")"))
        }
        if links.count > limit { lines.append("  ... \(links.count - limit) more") }
        return lines
    }

    // MARK: - Guest packets

    /// One packet from the guest's TX queue whose header passed `VsockPacketRejection.check`.
    func guestPacket(_ header: VsockHeader, payload: [UInt8]) {
        let key = VsockConnectionKey(hostPort: header.destinationPort, guestPort: header.sourcePort)
        let link = links[key]
        // §5.10.6: only stream sockets are offered; a seqpacket packet gets an RST.
        guard header.type == Vsock.typeStream else {
            if let link { kill(link, key) } else { replyReset(to: header) }
            return
        }
        guard let link else {
            switch header.operation {
            case .request: openGuestInitiated(header, key)
            case .rst: break
            default: replyReset(to: header)
            }
            return
        }
        switch link.connection.receive(header, payload: payload) {
        case .accepted: flush(link)
        case .reset: closeHost(link)
        case .closed: forget(key)
        }
        settle(key)
    }

    /// A packet whose header failed the checks: nothing in it is acted on, but if its ports
    /// name a live connection, that connection is reset.
    func rejectedPacket(_ header: VsockHeader) {
        let key = VsockConnectionKey(hostPort: header.destinationPort, guestPort: header.sourcePort)
        guard let link = links[key], link.connection.state != .closing else { return }
        kill(link, key)
    }

    /// The guest connects to host port P: connect to `<socketPath>_P` without blocking.
    private func openGuestInitiated(_ request: VsockHeader, _ key: VsockConnectionKey) {
        guard links.count + pendingHosts.count < maxConnections else { return replyReset(to: request) }
        guard case .success(let socket) = UnixSocket.connect(path: "\(socketPath)_\(request.destinationPort)") else {
            return replyReset(to: request)
        }
        let token = newToken()
        let link = HostLink(connection: .guestInitiated(request, bufferSize: Self.bufferSize), socket: socket,
                            token: token, watched: nil)
        adopt(link, key)
        settle(key)
    }

    /// An RST answering a packet that names no connection (never answering an RST). The type
    /// is echoed so that a guest's seqpacket socket matches it.
    private func replyReset(to packet: VsockHeader) {
        guard packet.operation != .rst, orphanResets.count < Self.maximumOrphanResets else { return }
        let type = packet.type == Vsock.typeSeqpacket ? Vsock.typeSeqpacket : Vsock.typeStream
        orphanResets.append(VsockHeader(
            sourceCID: Vsock.hostCID, destinationCID: guestCID, sourcePort: packet.destinationPort,
            destinationPort: packet.sourcePort, type: type, op: VsockOp.rst.rawValue))
    }

    // MARK: - Packets for the guest

    /// The next packet for an RX buffer with room for `maxPayload` payload bytes, or nil when
    /// nothing is owed. Host sockets are read here, straight into the packet, so data waits in
    /// the kernel until the guest has both an RX buffer and credit for it.
    func nextPacketForGuest(maxPayload: Int) -> VsockPacket? {
        if !orphanResets.isEmpty { return VsockPacket(header: orphanResets.removeFirst(), payload: []) }
        // Each connection gets one turn per call; a busy one goes to the back.
        var turns = ready.count
        while turns > 0, !ready.isEmpty {
            turns -= 1
            let key = ready.removeFirst()
            queued.remove(key)
            guard let link = links[key] else { continue }
            let packet = produce(link, maxPayload: maxPayload)
            settle(key)
            if let packet { return packet }
        }
        return nil
    }

    private func produce(_ link: HostLink, maxPayload: Int) -> VsockPacket? {
        // Two rounds: a read that finds EOF (or an error) owes a SHUTDOWN (or an RST) instead.
        for _ in 0..<2 {
            if let header = link.connection.nextControlPacket() { return VsockPacket(header: header, payload: []) }
            guard link.connection.canSendData, let socket = link.socket else { return nil }
            let room = min(maxPayload, Int(link.connection.peerCredit), Vsock.maximumPayload)
            // An RX buffer with room for a header only still carries our credit.
            guard room > 0 else { return VsockPacket(header: link.connection.creditUpdatePacket(), payload: []) }
            switch socket.read(maxBytes: room) {
            case .done(let bytes) where !bytes.isEmpty:
                return VsockPacket(header: link.connection.dataPacket(length: bytes.count), payload: bytes)
            case .done:
                link.connection.hostReachedEOF()
            case .wouldBlock:
                link.connection.hostReadable = false
                return nil
            case .failed:
                link.connection.kill()
                closeHost(link)
            }
        }
        return nil
    }

    // MARK: - Host readiness

    /// The event loop says `fd` is ready. Stale calls (a descriptor closed since, its number
    /// maybe reused) are told apart by `token` and ignored.
    func hostReady(fd: Int32, token: UInt64, readiness: Readiness) {
        guard let owner = owners[fd], owner.token == token else { return }
        switch owner.role {
        case .listener:
            acceptAll()
        case .pending:
            if let pending = pendingHosts[fd] { readConnectLine(pending) }
        case .connection(let key):
            guard let link = links[key] else { return }
            let watched = link.watched ?? []
            let hungUp = readiness.contains(.closed)
            switch link.connection.state {
            case .requesting:
                // Watched for hang-up only: the host gave up before the guest answered.
                if hungUp {
                    link.connection.kill()
                    closeHost(link)
                }
            case .established:
                if hungUp { link.connection.hostHungUp = true }
                // A hang-up or error shows on whatever we were about to do.
                if readiness.contains(.writable) || (hungUp && watched.contains(.writable)) { flush(link) }
                if readiness.contains(.readable) || (hungUp && watched.contains(.readable)),
                   link.connection.state == .established {
                    link.connection.hostReadable = true
                }
            case .closing:
                break
            }
            settle(key)
        }
    }

    private func acceptAll() {
        guard let listener else { return }
        while true {
            switch listener.accept() {
            case .done(let socket):
                // Refused (closed at once) while the driver is down or at the connection cap.
                guard isActive, links.count + pendingHosts.count < maxConnections else {
                    socket.close()
                    continue
                }
                let token = newToken()
                do { try events.watch(socket.fd, for: .readable, handler: handler(socket.fd, token)) } catch {
                    socket.close()
                    continue
                }
                owners[socket.fd] = (token, .pending)
                pendingHosts[socket.fd] = PendingHost(socket: socket, token: token)
            case .wouldBlock:
                return
            case .failed(let e):
                if e == ECONNABORTED || e == EPROTO || e == EPERM { continue }
                // Out of descriptors or memory: stop watching the listener until a socket
                // closes, or a level-triggered loop would spin on it.
                pauseListener()
                return
            }
        }
    }

    /// Reads the CONNECT line without reading past its newline: whatever the host sends
    /// after it is the connection's first data, left in the socket for later.
    private func readConnectLine(_ pending: PendingHost) {
        while true {
            let room = VsockHostLine.maximumLength - pending.line.count
            switch pending.socket.read(maxBytes: room, peek: true) {
            case .done(let peeked):
                guard !peeked.isEmpty else { return dropPending(pending) }
                let take = peeked.firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? peeked.count
                guard case .done(let taken) = pending.socket.read(maxBytes: take), !taken.isEmpty else {
                    return dropPending(pending)
                }
                pending.line += taken
                if pending.line.last == UInt8(ascii: "\n") {
                    guard let port = VsockHostLine.parseConnect(pending.line) else { return dropPending(pending) }
                    return promote(pending, guestPort: port)
                }
                if pending.line.count >= VsockHostLine.maximumLength { return dropPending(pending) }
            case .wouldBlock:
                return
            case .failed:
                return dropPending(pending)
            }
        }
    }

    /// A whole CONNECT line: the socket becomes a host-initiated connection owing a REQUEST.
    private func promote(_ pending: PendingHost, guestPort: UInt32) {
        let fd = pending.socket.fd
        pendingHosts.removeValue(forKey: fd)
        guard isActive else { return dropPending(pending) }
        let hostPort = allocateHostPort()
        let key = VsockConnectionKey(hostPort: hostPort, guestPort: guestPort)
        let connection = VsockConnection.hostInitiated(guestCID: guestCID, hostPort: hostPort, guestPort: guestPort,
                                                       bufferSize: Self.bufferSize)
        let link = HostLink(connection: connection, socket: pending.socket, token: pending.token, watched: .readable)
        adopt(link, key)
        settle(key)
        let token = link.token, expire = self.expire
        events.schedule(after: requestTimeout) { expire?(key, token) }
    }

    /// A connection's timer went off: a host-initiated request the guest has not answered is
    /// reset (the guest gets an RST, the host socket closes). Stale timers are ignored.
    func timerExpired(_ key: VsockConnectionKey, token: UInt64) {
        guard let link = links[key], link.token == token, link.connection.state == .requesting else { return }
        kill(link, key)
    }

    private func dropPending(_ pending: PendingHost) {
        let fd = pending.socket.fd
        pendingHosts.removeValue(forKey: fd)
        if fd >= 0 {
            events.unwatch(fd)
            owners.removeValue(forKey: fd)
        }
        pending.socket.close()
        resumeListener()
    }

    // MARK: - Connection bookkeeping

    private func adopt(_ link: HostLink, _ key: VsockConnectionKey) {
        links[key] = link
        if let socket = link.socket { owners[socket.fd] = (link.token, .connection(key)) }
        hostPortUse[key.hostPort, default: 0] += 1
    }

    /// Brings a connection's side effects in line with its state after anything happened to
    /// it: host write shutdown, the final RST, what the socket is watched for, its turn for
    /// the guest, and forgetting it once dead and paid off.
    private func settle(_ key: VsockConnectionKey) {
        guard let link = links[key] else { return }
        if link.connection.state == .established, let socket = link.socket {
            if link.connection.shouldShutDownHostWrite {
                socket.shutdownWrite()
                link.connection.hostWriteWasShutDown()
            }
            if link.connection.isFinished || link.connection.isAbandoned { link.connection.kill() }
        }
        if link.connection.state == .closing {
            closeHost(link)
            if !link.connection.hasPacketForGuest { return forget(key) }
        }
        if !updateWatch(link) {
            link.connection.kill()
            closeHost(link)
        }
        if link.connection.hasPacketForGuest, !queued.contains(key) {
            ready.append(key)
            queued.insert(key)
        }
    }

    /// Watches the socket for what the connection wants. A requesting connection, and an
    /// established one that wants nothing, are watched for hang-up alone (poll reports it
    /// whatever was asked for): a host that closes while the guest is silent must still end
    /// the connection. Once a hang-up has been seen, a connection that wants nothing is not
    /// watched at all, or the level-triggered loop would spin on it. False if the event loop
    /// refused.
    private func updateWatch(_ link: HostLink) -> Bool {
        guard let socket = link.socket else { return true }
        let wanted: Readiness?
        switch link.connection.state {
        case .requesting: wanted = []
        case .established:
            let interest = link.connection.hostInterest
            wanted = !interest.isEmpty ? interest : link.connection.hostHungUp ? nil : []
        case .closing: wanted = nil
        }
        guard wanted != link.watched else { return true }
        if let wanted {
            do {
                if link.watched == nil {
                    try events.watch(socket.fd, for: wanted, handler: handler(socket.fd, link.token))
                } else {
                    try events.change(socket.fd, to: wanted)
                }
            } catch {
                return false
            }
        } else {
            events.unwatch(socket.fd)
        }
        link.watched = wanted
        return true
    }

    private func flush(_ link: HostLink) {
        guard let socket = link.socket else { return }
        while !link.connection.outbound.isEmpty {
            switch link.connection.outbound.withFront({ socket.write($0) }) {
            case .done(let n):
                guard n > 0 else { return }
                link.connection.flushed(n)
            case .wouldBlock:
                return
            case .failed:
                link.connection.kill()
                closeHost(link)
                return
            }
        }
    }

    private func kill(_ link: HostLink, _ key: VsockConnectionKey) {
        link.connection.kill()
        closeHost(link)
        settle(key)
    }

    private func closeHost(_ link: HostLink) {
        guard let socket = link.socket else { return }
        if socket.fd >= 0 {
            if link.watched != nil { events.unwatch(socket.fd) }
            owners.removeValue(forKey: socket.fd)
        }
        socket.close()
        link.socket = nil
        link.watched = nil
        resumeListener()
    }

    private func forget(_ key: VsockConnectionKey) {
        guard let link = links.removeValue(forKey: key) else { return }
        closeHost(link)
        queued.remove(key)
        if let n = hostPortUse[key.hostPort], n > 1 { hostPortUse[key.hostPort] = n - 1 } else {
            hostPortUse.removeValue(forKey: key.hostPort)
        }
    }

    /// A host port no live connection uses. At most `maxConnections` are in use out of
    /// 3 * 2^30, so the search is short.
    private func allocateHostPort() -> UInt32 {
        while true {
            let port = nextHostPort
            nextHostPort = port == UInt32.max ? Self.firstHostPort : port + 1
            if hostPortUse[port] == nil { return port }
        }
    }

    private func newToken() -> UInt64 {
        defer { nextToken += 1 }
        return nextToken
    }

    private func handler(_ fd: Int32, _ token: UInt64) -> @Sendable (Readiness) -> Void {
        let dispatch = self.dispatch
        return { readiness in dispatch?(fd, token, readiness) }
    }

    private func pauseListener() {
        guard let listener, !listenerPaused else { return }
        events.unwatch(listener.fd)
        listenerPaused = true
    }

    private func resumeListener() {
        guard listenerPaused, let listener, let owner = owners[listener.fd] else { return }
        if (try? events.watch(listener.fd, for: .readable, handler: handler(listener.fd, owner.token))) != nil {
            listenerPaused = false
        }
    }

    // MARK: - Teardown

    /// Closes every host socket and forgets every connection (device reset); the listener stays.
    func closeConnections() {
        isActive = false
        for link in links.values { closeHost(link) }
        links.removeAll()
        for pending in Array(pendingHosts.values) { dropPending(pending) }
        ready.removeAll()
        queued.removeAll()
        orphanResets.removeAll()
        hostPortUse.removeAll()
    }

    /// Closes everything, the listener too, and removes its socket file.
    func close() {
        closeConnections()
        guard let listener else { return }
        if !listenerPaused, listener.fd >= 0 { events.unwatch(listener.fd) }
        owners.removeValue(forKey: listener.fd)
        listener.close()
        self.listener = nil
        unlink(socketPath)
    }
}
