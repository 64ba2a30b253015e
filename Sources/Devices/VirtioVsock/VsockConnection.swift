/// Bytes waiting to be written, oldest first: an array with a moving front, compacted as it
/// drains so that a long-lived connection does not keep a large dead prefix.
struct ByteQueue: Sendable {
    private var storage: [UInt8] = []
    private var start = 0

    var count: Int { storage.count - start }
    var isEmpty: Bool { start == storage.count }

    mutating func append(_ bytes: [UInt8]) {
        storage += bytes
    }

    /// Calls `body` with the queued bytes (all of them, contiguous).
    func withFront<T>(_ body: (UnsafeRawBufferPointer) -> T) -> T {
        storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start...])) }
    }

    mutating func removeFirst(_ n: Int) {
        start += min(max(n, 0), count)
        if start == storage.count {
            storage.removeAll(keepingCapacity: storage.capacity <= 64 * 1024)
            start = 0
        } else if start >= 64 * 1024 && start * 2 >= storage.count {
            storage.removeFirst(start)
            start = 0
        }
    }

    mutating func removeAll() {
        storage = []
        start = 0
    }
}

/// One stream connection between a guest port and a host Unix socket, without the socket: its
/// state, the credit both ways (virtio 1.2 §5.10.6.3), what it owes the guest, and the guest's
/// bytes waiting for the host socket. The muxer does the I/O and reports what happened; every
/// decision about what a packet means is made here, so it tests without sockets.
///
/// Counters are free-running u32s, compared with wrapping arithmetic as §5.10.6.3 defines them.
package struct VsockConnection: Sendable {
    package enum State: Equatable, Sendable {
        /// Host-initiated: REQUEST sent (or about to be), waiting for the guest's RESPONSE.
        case requesting
        /// Data may flow, subject to each side's shutdown promises.
        case established
        /// Dead: an RST is owed to the guest; the host socket is already closed. The muxer
        /// forgets the connection once the RST has gone out.
        case closing
    }

    /// Control packets owed to the guest, sent in the order `nextControlPacket` picks.
    package struct Pending: OptionSet, Sendable {
        package let rawValue: UInt8
        package init(rawValue: UInt8) { self.rawValue = rawValue }
        package static let request = Pending(rawValue: 1 << 0)
        package static let response = Pending(rawValue: 1 << 1)
        package static let shutdown = Pending(rawValue: 1 << 2)
        package static let creditUpdate = Pending(rawValue: 1 << 3)
        package static let rst = Pending(rawValue: 1 << 4)
    }

    /// What a packet from the guest did to the connection.
    package enum Verdict: Equatable, Sendable {
        /// Absorbed (possibly with bytes now queued for the host, or a reply owed).
        case accepted
        /// A protocol or credit violation: the connection is now `.closing` and owes an RST.
        case reset
        /// The guest reset the connection: close the host socket and forget it, no reply.
        case closed
    }

    package let guestCID: UInt64
    package let hostPort: UInt32
    package let guestPort: UInt32
    /// Our receive buffer for guest→host bytes (`buf_alloc` in every header we send).
    package let bufferSize: UInt32
    /// Send a CREDIT_UPDATE when the guest's view of our free space falls below this.
    package let creditUpdateThreshold: UInt32

    package private(set) var state: State
    package private(set) var pending: Pending

    // Shutdown promises (§5.10.6.5), each one-way and permanent.
    package private(set) var guestStoppedSending = false
    package private(set) var guestStoppedReceiving = false
    /// The host socket reached EOF; we owe or sent SHUTDOWN(SEND).
    package private(set) var hostStoppedSending = false
    /// We shut down the host socket's write side after the guest's SHUTDOWN(SEND).
    package private(set) var hostWriteShutDown = false

    // Host → guest.
    /// The host socket reported readable and has not since said EAGAIN.
    package var hostReadable = false
    /// Poll reported a hang-up: the host closed its socket entirely (a half-close by
    /// shutdown(2) shows as EOF only).
    package var hostHungUp = false
    package private(set) var peerBufferAllocation: UInt32
    package private(set) var peerForwardCount: UInt32
    /// Payload bytes sent to the guest (tx_cnt).
    package private(set) var sentCount: UInt32 = 0
    /// A CREDIT_REQUEST went out and no packet has come back since.
    private var creditRequested = false

    // Guest → host.
    /// Bytes for the host socket: first `preambleLength` bytes of our own ("OK <port>\n",
    /// outside the credit accounting), then the guest's payload.
    private(set) var outbound = ByteQueue()
    package private(set) var preambleLength = 0
    /// Payload bytes accepted from the guest, and those written to the host socket (fwd_cnt).
    package private(set) var receivedCount: UInt32 = 0
    package private(set) var forwardCount: UInt32 = 0
    /// The `fwd_cnt` in the last header we sent: the guest's latest view of our buffer.
    package private(set) var lastForwardCountSent: UInt32 = 0

    private init(guestCID: UInt64, hostPort: UInt32, guestPort: UInt32, bufferSize: UInt32, state: State,
                 pending: Pending, peerBufferAllocation: UInt32, peerForwardCount: UInt32) {
        self.guestCID = guestCID
        self.hostPort = hostPort
        self.guestPort = guestPort
        self.bufferSize = bufferSize
        creditUpdateThreshold = bufferSize / 2
        self.state = state
        self.pending = pending
        self.peerBufferAllocation = peerBufferAllocation
        self.peerForwardCount = peerForwardCount
    }

    /// A host process asked (`CONNECT <guestPort>`) for the guest: we owe the guest a REQUEST.
    package static func hostInitiated(guestCID: UInt64, hostPort: UInt32, guestPort: UInt32, bufferSize: UInt32) -> Self {
        Self(guestCID: guestCID, hostPort: hostPort, guestPort: guestPort, bufferSize: bufferSize,
             state: .requesting, pending: .request, peerBufferAllocation: 0, peerForwardCount: 0)
    }

    /// The guest's REQUEST reached a listening host socket: we owe it a RESPONSE, and its
    /// header carries its first credit.
    package static func guestInitiated(_ request: VsockHeader, bufferSize: UInt32) -> Self {
        Self(guestCID: request.sourceCID, hostPort: request.destinationPort, guestPort: request.sourcePort,
             bufferSize: bufferSize, state: .established, pending: .response,
             peerBufferAllocation: request.bufferAllocation, peerForwardCount: request.forwardCount)
    }

    // MARK: - Credit (§5.10.6.3)

    /// How many more payload bytes the guest can take: buf_alloc - (tx_cnt - fwd_cnt). A guest
    /// claiming to have forwarded more than it was sent gets no credit (the difference wraps
    /// past its buffer), so lying only stalls its own connection.
    package var peerCredit: UInt32 {
        let inFlight = sentCount &- peerForwardCount
        return inFlight >= peerBufferAllocation ? 0 : peerBufferAllocation - inFlight
    }

    /// What the guest believes it may still send us: our buffer less what it sent beyond the
    /// last `fwd_cnt` we told it.
    package var guestCredit: UInt32 {
        let unacknowledged = receivedCount &- lastForwardCountSent
        return unacknowledged >= bufferSize ? 0 : bufferSize - unacknowledged
    }

    /// The guest's bytes still waiting for the host socket.
    package var queuedGuestBytes: Int { outbound.count - preambleLength }

    /// Credit, queues and shutdown promises in one line, for the VMM's state dump.
    package var debugSummary: String {
        "credit to guest \(peerCredit) (alloc \(peerBufferAllocation), sent \(sentCount), fwd \(peerForwardCount)), "
            + "credit from guest \(guestCredit), queued for host \(queuedGuestBytes), host readable \(hostReadable), "
            + "pending 0x\(String(pending.rawValue, radix: 16)), shut: guest send \(guestStoppedSending) "
            + "recv \(guestStoppedReceiving), host send \(hostStoppedSending)"
    }

    // MARK: - Packets from the guest

    /// Absorbs one packet the guest sent on this connection (already checked against its
    /// chain, its CIDs and type). RW payload is queued for the host; the muxer writes it out.
    package mutating func receive(_ header: VsockHeader, payload: [UInt8] = []) -> Verdict {
        if state == .closing {
            // An RST is already owed; an RST from the guest settles it without ours.
            return header.operation == .rst ? .closed : .accepted
        }
        // Every packet carries the sender's credit (§5.10.6.3).
        peerBufferAllocation = header.bufferAllocation
        peerForwardCount = header.forwardCount
        creditRequested = false

        switch header.operation {
        case .rst:
            return .closed
        case .response:
            guard state == .requesting else { return kill() }
            state = .established
            let line = VsockHostLine.ok(hostPort: hostPort)
            outbound.append(line)
            preambleLength += line.count
            return .accepted
        case .rw:
            guard state == .established, !guestStoppedSending else { return kill() }
            if payload.isEmpty { return .accepted }
            // The guest may send only what we advertised; more would grow our queue past
            // buf_alloc, so it costs the connection.
            guard payload.count <= Int(guestCredit) else { return kill() }
            outbound.append(payload)
            receivedCount &+= UInt32(payload.count)
            return .accepted
        case .creditUpdate:
            return .accepted
        case .creditRequest:
            pending.insert(.creditUpdate)
            return .accepted
        case .shutdown:
            guard state == .established else { return kill() }
            if header.flags & Vsock.shutdownReceive != 0 { guestStoppedReceiving = true }
            if header.flags & Vsock.shutdownSend != 0 { guestStoppedSending = true }
            return .accepted
        case .request, nil:
            return kill()
        }
    }

    /// Ends the connection with an RST to the guest; queued bytes are dropped.
    @discardableResult
    package mutating func kill() -> Verdict {
        state = .closing
        pending = .rst
        outbound.removeAll()
        preambleLength = 0
        hostReadable = false
        return .reset
    }

    // MARK: - Host socket events

    /// `count` bytes of `outbound` reached the host socket.
    package mutating func flushed(_ count: Int) {
        let n = min(max(count, 0), outbound.count)
        let ours = min(n, preambleLength)
        preambleLength -= ours
        forwardCount &+= UInt32(n - ours)
        outbound.removeFirst(n)
        if guestCredit < creditUpdateThreshold && forwardCount != lastForwardCountSent {
            pending.insert(.creditUpdate)
        }
    }

    /// The host socket returned EOF: tell the guest we will send no more.
    package mutating func hostReachedEOF() {
        guard state == .established else { return }
        hostStoppedSending = true
        hostReadable = false
        pending.insert(.shutdown)
    }

    package mutating func hostWriteWasShutDown() { hostWriteShutDown = true }

    /// The guest will send no more and everything it sent is out: shut the host's write side.
    package var shouldShutDownHostWrite: Bool {
        state == .established && guestStoppedSending && outbound.isEmpty && !hostWriteShutDown
    }

    /// Nothing can move either way any more and nothing is queued: time for the RST.
    package var isFinished: Bool {
        state == .established && guestStoppedSending && (guestStoppedReceiving || hostStoppedSending)
            && outbound.isEmpty
    }

    /// The host closed its socket for good and we have passed on all it sent (its EOF, and so
    /// our SHUTDOWN, is owed or out); nothing the guest sends can be delivered any more, so
    /// waiting for the guest to close would let a silent guest hold the slot for ever.
    package var isAbandoned: Bool {
        state == .established && hostHungUp && hostStoppedSending && outbound.isEmpty
    }

    /// Whether host bytes may be moved to the guest at all (credit aside).
    private var hostToGuestOpen: Bool {
        state == .established && !hostStoppedSending && !guestStoppedReceiving
    }

    /// The host socket has bytes and the guest has room for some.
    package var canSendData: Bool { hostReadable && hostToGuestOpen && peerCredit > 0 }

    /// Out of guest credit with host bytes waiting, and not yet asked.
    private var needsCreditRequest: Bool {
        hostReadable && hostToGuestOpen && peerCredit == 0 && !creditRequested
    }

    /// What to watch the host socket for: readable while bytes may go to the guest and none are
    /// already waiting; writable while bytes wait for the host. Empty (watch for hang-up only)
    /// while requesting; nothing at all once closing.
    package var hostInterest: Readiness {
        guard state == .established else { return [] }
        var interest: Readiness = []
        if !outbound.isEmpty { interest.insert(.writable) }
        if !hostReadable && hostToGuestOpen && peerCredit > 0 { interest.insert(.readable) }
        return interest
    }

    // MARK: - Packets to the guest

    /// Whether the connection has a packet for the guest now.
    package var hasPacketForGuest: Bool { !pending.isEmpty || canSendData || needsCreditRequest }

    /// The next control packet owed, if any: RST first (nothing else matters), then the
    /// handshake, SHUTDOWN, a credit request, and a credit update only when no data packet is
    /// about to carry the same information.
    package mutating func nextControlPacket() -> VsockHeader? {
        if pending.contains(.rst) {
            pending = []
            return header(.rst)
        }
        if pending.contains(.response) {
            pending.remove(.response)
            return header(.response)
        }
        if pending.contains(.request) {
            pending.remove(.request)
            return header(.request)
        }
        if pending.contains(.shutdown) {
            pending.remove(.shutdown)
            return header(.shutdown, flags: Vsock.shutdownSend)
        }
        if needsCreditRequest {
            creditRequested = true
            return header(.creditRequest)
        }
        if pending.contains(.creditUpdate) && !canSendData {
            return header(.creditUpdate)
        }
        return nil
    }

    /// A CREDIT_UPDATE now, whatever is pending: for an RX buffer that has no room for data.
    package mutating func creditUpdatePacket() -> VsockHeader { header(.creditUpdate) }

    /// The header for `length` payload bytes just read from the host socket.
    package mutating func dataPacket(length: Int) -> VsockHeader {
        sentCount &+= UInt32(length)
        return header(.rw, length: UInt32(length))
    }

    /// Every header carries our credit, so sending any packet settles a pending update.
    private mutating func header(_ op: VsockOp, length: UInt32 = 0, flags: UInt32 = 0) -> VsockHeader {
        lastForwardCountSent = forwardCount
        pending.remove(.creditUpdate)
        return VsockHeader(
            sourceCID: Vsock.hostCID, destinationCID: guestCID, sourcePort: hostPort, destinationPort: guestPort,
            length: length, type: Vsock.typeStream, op: op.rawValue, flags: flags,
            bufferAllocation: bufferSize, forwardCount: forwardCount)
    }
}

/// The text a host process exchanges with the device on the Unix socket before relaying starts
/// (Firecracker's convention): `CONNECT <port>\n` from the host, `OK <host port>\n` back once
/// the guest accepted.
enum VsockHostLine {
    /// The longest CONNECT line taken, newline included.
    static let maximumLength = 32

    /// The guest port named by a whole line (newline included): `CONNECT`, in any case, then
    /// whitespace, then a decimal u32, nothing else. Nil for anything else.
    static func parseConnect(_ line: [UInt8]) -> UInt32? {
        guard line.count <= maximumLength, line.last == UInt8(ascii: "\n") else { return nil }
        let isSpace: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }
        let words = line.dropLast().split(whereSeparator: isSpace)
        guard words.count == 2 else { return nil }
        let keyword = String(decoding: words[0], as: UTF8.self)
        guard keyword.lowercased() == "connect" else { return nil }
        let digits = words[1]
        guard !digits.isEmpty, digits.count <= 10,
              digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return UInt32(String(decoding: digits, as: UTF8.self))
    }

    static func ok(hostPort: UInt32) -> [UInt8] { Array("OK \(hostPort)\n".utf8) }
}
