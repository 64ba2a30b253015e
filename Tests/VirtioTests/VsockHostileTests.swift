import Devices
import GuestMemory
import Testing

/// A hostile guest against virtio-vsock: every header field it writes is checked before it is
/// believed. A bad packet is dropped and resets the connection it names; a malformed chain
/// stops the device (DEVICE_NEEDS_RESET), never the VMM, and closes its host sockets.
@Suite struct VsockHostileTests {
    /// An established connection, and the bytes the host must never see.
    static func connected() throws -> (VsockGuest, HostSocket, UInt32) {
        let guest = try VsockGuest.started()
        let (client, hostPort) = try guest.connectFromHost(guestPort: 5000)
        return (guest, client, hostPort)
    }

    /// The packet was dropped: nothing reached the host, the connection it named was reset
    /// (RST to the guest, host socket closed), and the device carries on.
    static func expectDroppedAndReset(_ guest: VsockGuest, _ client: HostSocket, hostPort: UInt32,
                                      sourceLocation: SourceLocation = #_sourceLocation) {
        let rst = guest.receive()
        #expect(rst.count == 1, sourceLocation: sourceLocation)
        #expect(rst.first?.op == .rst, sourceLocation: sourceLocation)
        #expect(rst.first?.header.sourcePort == hostPort && rst.first?.header.destinationPort == 5000,
                sourceLocation: sourceLocation)
        #expect(client.read() == [], "host socket got data or stayed open", sourceLocation: sourceLocation)
        #expect(guest.device.connectionCount == 0, sourceLocation: sourceLocation)
        #expect(!guest.needsReset, sourceLocation: sourceLocation)
    }

    @Test func lengthBeyondTheChainIsDropped() throws {
        let (guest, client, hostPort) = try Self.connected()
        // len says 100, the chain holds 10 after the header.
        guest.send(VsockGuest.header(.rw, guestPort: 5000, hostPort: hostPort, length: 100), payload: pattern(10))
        Self.expectDroppedAndReset(guest, client, hostPort: hostPort)
    }

    @Test func lengthOver64KiBIsDroppedEvenWhenTheChainHoldsIt() throws {
        let (guest, client, hostPort) = try Self.connected()
        let payload = pattern(64 * 1024 + 1)
        guest.send(VsockGuest.header(.rw, guestPort: 5000, hostPort: hostPort, length: payload.count), payload: payload)
        Self.expectDroppedAndReset(guest, client, hostPort: hostPort)
    }

    @Test func wrongSourceCIDIsDropped() throws {
        let (guest, client, hostPort) = try Self.connected()
        var header = VsockGuest.header(.rw, guestPort: 5000, hostPort: hostPort, length: 4)
        header.sourceCID = 4  // another guest's CID
        guest.send(header, payload: [1, 2, 3, 4])
        Self.expectDroppedAndReset(guest, client, hostPort: hostPort)
    }

    @Test func wrongDestinationCIDIsDropped() throws {
        let (guest, client, hostPort) = try Self.connected()
        var header = VsockGuest.header(.rw, guestPort: 5000, hostPort: hostPort, length: 4)
        header.destinationCID = 5  // not the host
        guest.send(header, payload: [1, 2, 3, 4])
        Self.expectDroppedAndReset(guest, client, hostPort: hostPort)
    }

    @Test func badHeadersNamingNoConnectionAreDroppedSilently() throws {
        let guest = try VsockGuest.started()
        let listener = try HostListener(path: guest.path + "_5000")
        var request = VsockGuest.header(.request, guestPort: 1, hostPort: 5000)
        request.sourceCID = 9
        guest.send(request)
        #expect(guest.receive().isEmpty)
        #expect(listener.accept() == nil)  // nothing was connected on its say-so
        #expect(guest.device.connectionCount == 0)
        #expect(!guest.needsReset)
    }

    @Test func chainTooShortForAHeaderIsDropped() throws {
        let (guest, client, hostPort) = try Self.connected()
        try guest.memory.write(Array(VsockGuest.header(.rst, guestPort: 5000, hostPort: hostPort).bytes.prefix(30)),
                               at: 0x30_0000)
        guest.sendChain([.readable(0x30_0000, 30)])
        #expect(guest.tx.usedIndex == guest.tx.availIndex)  // consumed
        #expect(guest.receive().isEmpty)
        #expect(guest.device.connectionCount == 1)  // the truncated RST did nothing
        #expect(client.read() == nil)
        #expect(!guest.needsReset)
    }

    @Test func sendingBeyondTheAdvertisedCreditResets() throws {
        let (guest, client, hostPort) = try Self.connected()
        // The host reads nothing; the guest sends exactly what the device's headers allow.
        let data = pattern(1 << 20)
        var sent = 0
        var forwarded: UInt32 = 0
        while true {
            for p in guest.receive() {
                #expect(p.op == .creditUpdate)
                forwarded = p.header.forwardCount
            }
            let credit = 256 * 1024 - (sent - Int(forwarded))
            guard credit > 0 else { break }
            let n = min(credit, 64 * 1024)
            guest.send(VsockGuest.header(.rw, guestPort: 5000, hostPort: hostPort, length: n),
                       payload: Array(data[sent..<sent + n]))
            sent += n
        }
        #expect(guest.device.connectionCount == 1)
        guest.send(VsockGuest.header(.rw, guestPort: 5000, hostPort: hostPort, length: 1), payload: [data[sent]])
        let rst = try #require(guest.receive().first)
        #expect(rst.op == .rst)
        #expect(guest.device.connectionCount == 0)
        // The host got a prefix of what the guest was entitled to send, then EOF: the queued
        // rest and the byte over the limit are dropped with the connection.
        var got: [UInt8] = []
        while let chunk = client.read(), !chunk.isEmpty { got += chunk }
        #expect(got.count <= sent)
        #expect(got == Array(data[0..<got.count]))
    }

    // MARK: Malformed chains stop the device

    @Test func writableDescriptorInATxChainFailsTheDevice() throws {
        let (guest, client, hostPort) = try Self.connected()
        let header = VsockGuest.header(.rw, guestPort: 5000, hostPort: hostPort, length: 4)
        try guest.memory.write(header.bytes, at: 0x30_0000)
        try guest.memory.write([1, 2, 3, 4], at: 0x30_0100)
        guest.sendChain([.readable(0x30_0000, 44), .writable(0x30_0100, 4)])
        #expect(guest.needsReset)
        #expect(guest.transport.failure?.contains("device-writable") == true)
        #expect(guest.read(Reg.interruptStatus) & 0x2 != 0)
        #expect(client.read() == [])  // its connections are closed, nothing was written
        #expect(guest.device.connectionCount == 0)
    }

    @Test func readableRxBufferFailsTheDevice() throws {
        let guest = try VsockGuest.started(rxBuffers: 0)
        guest.rx.addChain([.readable(0x10_0000, 4140)])
        guest.write(Reg.queueNotify, 0)
        let client = try HostSocket.connect(to: guest.path)
        client.write("CONNECT 5\n")
        guest.pump { guest.needsReset }
        #expect(guest.needsReset)
        #expect(guest.transport.failure?.contains("device-readable") == true)
    }

    @Test func rxBufferShorterThanAHeaderFailsTheDevice() throws {
        let guest = try VsockGuest.started(rxBuffers: 0)
        guest.postRx(1, size: 43)
        guest.send(VsockGuest.header(.rw, guestPort: 1, hostPort: 2, length: 0))  // owes an RST
        #expect(guest.needsReset)
        #expect(guest.transport.failure?.contains("less than a 44-byte header") == true)
        #expect(guest.rx.usedIndex == 0)  // nothing written into it
    }

    @Test func headerOnlyRxBuffersStillMakeProgress() throws {
        let guest = try VsockGuest.started(rxBuffers: 0)
        guest.postRx(1)
        let client = try HostSocket.connect(to: guest.path)
        client.write("CONNECT 5000\n")
        let request = try #require(guest.pumpReceive().first)
        guest.send(VsockGuest.header(.response, guestPort: 5000, hostPort: request.header.sourcePort))
        _ = guest.pumpRead(client, count: 14)
        client.write([1, 2, 3])
        guest.postRx(1, size: 44)  // room for a header and no data
        let update = try #require(guest.pumpReceive().first)
        #expect(update.op == .creditUpdate)
        guest.postRx(1)
        #expect(guest.pumpReceive().first?.payload == [1, 2, 3])
    }

    // MARK: CVE-2019-18960

    /// Firecracker's vsock trusted a guest length to access memory past the end of guest RAM.
    /// Here a payload buffer whose address + length runs past RAM is refused when its chain is
    /// popped: the device never reads it, nothing reaches the host, and the device stops.
    @Test func payloadBufferRunningPastTheEndOfRAMIsNeverRead() throws {
        let (guest, client, hostPort) = try Self.connected()
        let header = VsockGuest.header(.rw, guestPort: 5000, hostPort: hostPort, length: 0x2000)
        try guest.memory.write(header.bytes, at: 0x30_0000)
        let nearEnd = VsockGuest.memorySize - 0x1000
        let used = guest.tx.usedIndex
        guest.sendChain([.readable(0x30_0000, 44), .readable(nearEnd, 0x2000)])
        #expect(guest.needsReset)
        #expect(guest.transport.failure?.contains("outside guest RAM") == true)
        #expect(guest.tx.usedIndex == used)
        #expect(client.read() == [])  // closed, and not one byte written
    }

    /// The same attack with a chain that lies inside RAM but is shorter than `len`: the device
    /// reads nothing past the chain (here the last bytes of RAM), drops the packet and carries on.
    @Test func lengthReachingPastTheLastBufferInRAMIsNeverRead() throws {
        let (guest, client, hostPort) = try Self.connected()
        let header = VsockGuest.header(.rw, guestPort: 5000, hostPort: hostPort, length: 0x2000)
        try guest.memory.write(header.bytes, at: 0x30_0000)
        let lastBytes = VsockGuest.memorySize - 16
        try guest.memory.write(pattern(16), at: lastBytes)
        let used = guest.tx.usedIndex
        guest.sendChain([.readable(0x30_0000, 44), .readable(lastBytes, 16)])
        Self.expectDroppedAndReset(guest, client, hostPort: hostPort)
        #expect(guest.tx.usedIndex == used &+ 1)
    }

    /// A driver that republishes one head a ring's worth of times, and again as soon as the
    /// device has taken them: one notification takes at most a queue's worth, and the device
    /// comes back for the rest on the event loop by itself, between rounds of host sockets.
    @Test func aTxQueueKeptFullIsTakenAQueuesWorthPerRound() throws {
        let guest = try VsockGuest.started()
        var junk = VsockGuest.header(.request, guestPort: 1, hostPort: 5000)
        junk.sourceCID = 9  // dropped silently: it names no connection
        try guest.memory.write(junk.bytes, at: VsockGuest.txArea)
        guest.tx.writeDescriptor(0, VsockGuest.txArea, 44)
        for _ in 0..<256 { guest.tx.publish(0) }
        guest.write(Reg.queueNotify, 1)
        #expect(guest.tx.usedIndex == 256)
        #expect(guest.registry.pendingWork == 1)
        // The driver publishes the same head again without notifying: the next round takes it.
        for _ in 0..<256 { guest.tx.publish(0) }
        guest.registry.poll()
        #expect(guest.tx.usedIndex == 512)
        // Nothing more was published: that round found nothing and scheduled no other.
        guest.registry.poll()
        #expect(guest.tx.usedIndex == 512 && guest.registry.pendingWork == 0)
        #expect(!guest.needsReset && guest.device.connectionCount == 0)
    }
}
