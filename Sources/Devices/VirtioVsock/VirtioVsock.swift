/// virtio-vsock (virtio 1.2 §5.10, "Socket Device"): stream sockets between the guest and host
/// processes, carried over Unix sockets in Firecracker's convention (see `VsockMuxer`).
///
/// Queues (§5.10.2): rx (0) takes the driver's empty buffers, which the device fills with
/// packets for the guest; tx (1) brings the guest's packets; event (2) is left alone (the
/// device never migrates, so it has no TRANSPORT_RESET to report).
///
/// The guest is hostile. A TX chain must be device-readable only and hold a whole header whose
/// `len` fits both the chain and 64 KiB, from the guest's CID to the host's; a packet that
/// fails is dropped (resetting the connection it names). A chain the queue itself rejects
/// (`VirtqueueError`), a TX chain with a writable buffer, or an RX buffer that is readable or
/// shorter than a header stops the device with DEVICE_NEEDS_RESET and closes its connections.
///
/// Threads: queue notifications, host-socket readiness, and (handed over by the transport)
/// `activate` and `reset` arrive on the event loop; config reads on vCPU threads. All state
/// sits under `lock`, which is held across non-blocking socket calls and guest-memory copies
/// only.
import POSIX

public final class VirtioVsock: VirtioDevice, @unchecked Sendable {
    public static let queueSize: UInt16 = 256
    /// Seconds a host-initiated connection waits for the guest's RESPONSE (see `VsockMuxer`).
    public static let requestTimeout: Double = 5
    static let rxQueue = 0
    static let txQueue = 1

    public let deviceType = VirtioDeviceType.vsock
    // No device feature bits: with none negotiated the device supports stream sockets only
    // (§5.10.3). EVENT_IDX is right for how the queues are used: TX is drained on every
    // notification, and RX is popped until empty before the device waits for a refill.
    public let offeredFeatures: UInt64 = VirtioFeature.eventIndex
    public let queueMaxSizes: [UInt16] = [queueSize, queueSize, queueSize]

    public let guestCID: UInt64
    public let socketPath: String

    private let lock = Lock()
    private let events: any EventRegistry
    private let muxer: VsockMuxer
    private var activation: VirtioActivation?
    /// A popped RX buffer not yet filled: RX chains cannot be put back, so one popped for a
    /// packet that turned out not to exist (the host socket said EAGAIN) waits for the next.
    private var heldRx: DescriptorChain?

    /// Listens on `socketPath` (replacing a stale socket there) and watches it through
    /// `events`. `guestCID` must be at least 3 and fit 32 bits (§5.10.4).
    public init(guestCID: UInt64, socketPath: String, events: any EventRegistry, maxConnections: Int = 1023,
                requestTimeout: Double = VirtioVsock.requestTimeout) throws {
        guard guestCID >= Vsock.minimumGuestCID, guestCID <= UInt64(UInt32.max) else {
            throw VsockError.invalidGuestCID(guestCID)
        }
        self.guestCID = guestCID
        self.socketPath = socketPath
        self.events = events
        muxer = try VsockMuxer(guestCID: guestCID, socketPath: socketPath, maxConnections: maxConnections,
                               requestTimeout: requestTimeout, events: events)
        try muxer.start(
            dispatch: { [weak self] fd, token, readiness in self?.hostReady(fd: fd, token: token, readiness: readiness) },
            expire: { [weak self] key, token in self?.timerExpired(key, token: token) })
    }

    deinit { muxer.close() }

    /// Closes every connection and the listener, and removes the socket file.
    public func close() { lock.withLock { muxer.close() } }

    /// Live connections (host- or guest-initiated, including ones owed a final RST).
    public var connectionCount: Int { lock.withLock { muxer.connectionCount } }

    /// Lines for the VMM's state dump: whether the device runs, the held RX buffer, and the
    /// muxer's connections.
    public var diagnostics: [String] {
        lock.withLock {
            ["active \(activation != nil), holding an RX buffer \(heldRx != nil)"] + muxer.diagnostics()
        }
    }

    // MARK: - Configuration space (§5.10.4)

    /// `le64 guest_cid`.
    public func readConfig(offset: Int, into data: inout [UInt8]) {
        for i in data.indices {
            let byte = offset + i
            guard byte >= 0, byte < 8 else { continue }
            data[i] = UInt8(truncatingIfNeeded: guestCID >> (8 * UInt64(byte)))
        }
    }

    public func writeConfig(offset: Int, data: [UInt8]) {}

    // MARK: - Lifecycle

    public func activate(_ activation: VirtioActivation) throws {
        try lock.withLock {
            self.activation = activation
            heldRx = nil
            muxer.setActive(true)
            try guarded { () throws in
                try processTx()
                try fillRx()
            }
        }
    }

    public func reset() {
        lock.withLock {
            activation = nil
            heldRx = nil
            muxer.closeConnections()
        }
    }

    public func queueNotified(_ index: Int) throws {
        try lock.withLock {
            guard activation != nil else { return }
            try guarded { () throws in
                switch index {
                case Self.rxQueue: try fillRx()
                case Self.txQueue:
                    try processTx()
                    try fillRx()
                default: break
                }
            }
        }
    }

    /// Runs `body`; on an error the device stops: connections close and the queues are let
    /// go. The caller reports the error (the transport, or `notifier.fail`).
    private func guarded(_ body: () throws -> Void) throws {
        do { try body() } catch {
            activation = nil
            heldRx = nil
            muxer.closeConnections()
            throw error
        }
    }

    /// The event loop's call for a host socket; errors go to the driver through the notifier.
    private func hostReady(fd: Int32, token: UInt64, readiness: Readiness) {
        lock.withLock {
            muxer.hostReady(fd: fd, token: token, readiness: readiness)
            guard let notifier = activation?.notifier else { return }
            do { try guarded { () throws in try fillRx() } } catch { notifier.fail(error) }
        }
    }

    /// A connection's timer, on the event loop (see `VsockMuxer.timerExpired`).
    private func timerExpired(_ key: VsockConnectionKey, token: UInt64) {
        lock.withLock {
            guard let notifier = activation?.notifier else { return }
            muxer.timerExpired(key, token: token)
            do { try guarded { () throws in try fillRx() } } catch { notifier.fail(error) }
        }
    }

    // MARK: - TX (§5.10.6.2)

    /// Used TX elements go back to the driver this many at a time, as they are done (§2.7.14).
    static let usedBatch = 64

    /// Takes at most a queue's worth of TX chains, returning them in batches of `usedBatch`. A
    /// driver that refills the ring as fast as it is emptied (or a hostile one that publishes
    /// the same heads again and again) gets the rest in a later round on the event loop, so one
    /// notification neither holds the device thread nor grows a list without bound.
    private func processTx() throws {
        guard let activation, let queue = activation.queues[Self.txQueue] ?? nil else { return }
        var used: [(head: UInt16, length: UInt32)] = []
        used.reserveCapacity(Self.usedBatch)
        var notify = false
        defer { if notify { activation.notifier.usedBuffers() } }
        for _ in 0..<queue.size {
            guard let popped = try queue.pop() else {
                if !used.isEmpty, try queue.push(used) { notify = true }
                return
            }
            let chain = try popped.requireReadableOnly()
            try handleTx(chain)
            used.append((head: chain.head, length: 0))
            if used.count == Self.usedBatch {
                if try queue.push(used) { notify = true }
                used.removeAll(keepingCapacity: true)
            }
        }
        if !used.isEmpty, try queue.push(used) { notify = true }
        events.schedule { [weak self] in self?.txContinues() }
    }

    /// The next round of a busy TX queue, on the event loop.
    private func txContinues() {
        lock.withLock {
            guard let notifier = activation?.notifier else { return }
            do { try guarded { () throws in
                try processTx()
                try fillRx()
            } } catch { notifier.fail(error) }
        }
    }

    /// One TX packet: the header is checked before anything in it is believed, and the payload
    /// is read only as far as `len`, which is then known to lie inside the chain.
    private func handleTx(_ chain: DescriptorChain) throws {
        let headerBytes = try chain.readReadable(from: 0, maxBytes: VsockHeader.size)
        guard let header = VsockHeader(decoding: headerBytes) else { return }
        let payloadBytes = chain.readableLength - VsockHeader.size
        if VsockPacketRejection.check(header, payloadBytes: payloadBytes, guestCID: guestCID) != nil {
            muxer.rejectedPacket(header)
            return
        }
        var payload: [UInt8] = []
        if header.operation == .rw, header.length > 0 {
            payload = try chain.readReadable(from: VsockHeader.size, maxBytes: Int(header.length))
        }
        muxer.guestPacket(header, payload: payload)
    }

    // MARK: - RX (§5.10.6.1)

    /// Fills RX buffers while the muxer has packets; stops when the driver has none left (its
    /// next RX notification resumes it).
    private func fillRx() throws {
        guard let activation, let queue = activation.queues[Self.rxQueue] ?? nil else { return }
        var notify = false
        defer { if notify { activation.notifier.usedBuffers() } }
        while muxer.hasPacketForGuest {
            let chain: DescriptorChain
            if let held = heldRx {
                chain = held
                heldRx = nil
            } else {
                guard let popped = try queue.pop() else { break }
                chain = try popped.requireWritableOnly()
                guard chain.writableLength >= VsockHeader.size else {
                    throw VsockError.rxBufferTooSmall(head: chain.head, length: chain.writableLength)
                }
            }
            let room = min(chain.writableLength - VsockHeader.size, Vsock.maximumPayload)
            guard var packet = muxer.nextPacketForGuest(maxPayload: room) else {
                heldRx = chain
                break
            }
            packet.header.length = UInt32(packet.payload.count)
            _ = try chain.writeWritable(packet.header.bytes)
            if !packet.payload.isEmpty { _ = try chain.writeWritable(packet.payload, at: VsockHeader.size) }
            let length = UInt32(VsockHeader.size + packet.payload.count)
            if try queue.push(head: chain.head, length: length) { notify = true }
        }
    }
}
