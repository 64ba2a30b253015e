@testable import Devices
import Testing

/// The connection state machine and its credit accounting (virtio 1.2 §5.10.6.3), without
/// sockets: packets in, packets and queued bytes out.
@Suite struct VsockConnectionTests {
    static let buffer: UInt32 = 256 * 1024

    static func fromGuest(_ op: VsockOp, length: Int = 0, flags: UInt32 = 0, bufferAllocation: UInt32 = 64 * 1024,
                          forwardCount: UInt32 = 0) -> VsockHeader {
        VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 7000, destinationPort: 1 << 30, length: UInt32(length),
                    op: op.rawValue, flags: flags, bufferAllocation: bufferAllocation, forwardCount: forwardCount)
    }

    /// Host-initiated, answered: established with the guest's credit.
    static func established(bufferAllocation: UInt32 = 64 * 1024) -> VsockConnection {
        var c = VsockConnection.hostInitiated(guestCID: 3, hostPort: 1 << 30, guestPort: 7000, bufferSize: buffer)
        #expect(c.nextControlPacket()?.operation == .request)
        #expect(c.receive(fromGuest(.response, bufferAllocation: bufferAllocation)) == .accepted)
        c.flushed(c.outbound.count)  // the OK line
        return c
    }

    // MARK: Handshake

    @Test func hostInitiatedSendsRequestThenWritesOKOnResponse() throws {
        var c = VsockConnection.hostInitiated(guestCID: 3, hostPort: 1 << 30, guestPort: 7000, bufferSize: Self.buffer)
        #expect(c.state == .requesting)
        #expect(c.hostInterest == [])
        let next = c.nextControlPacket()
        let request = try #require(next)
        #expect(request == VsockHeader(sourceCID: 2, destinationCID: 3, sourcePort: 1 << 30, destinationPort: 7000,
                                       op: VsockOp.request.rawValue, bufferAllocation: Self.buffer))
        #expect(c.nextControlPacket() == nil)
        #expect(c.receive(Self.fromGuest(.response, bufferAllocation: 4096, forwardCount: 0)) == .accepted)
        #expect(c.state == .established)
        #expect(c.peerCredit == 4096)
        #expect(c.outbound.withFront { Array($0) } == Array("OK 1073741824\n".utf8))
        // The OK line is ours, outside the credit: flushing it forwards no guest bytes.
        c.flushed(14)
        #expect(c.forwardCount == 0)
        #expect(c.outbound.isEmpty)
    }

    @Test func guestInitiatedOwesResponseWithTheGuestsCredit() throws {
        var c = VsockConnection.guestInitiated(Self.fromGuest(.request, bufferAllocation: 8192, forwardCount: 0),
                                               bufferSize: Self.buffer)
        #expect(c.hostPort == 1 << 30 && c.guestPort == 7000)
        let next = c.nextControlPacket()
        let response = try #require(next)
        #expect(response.operation == .response)
        #expect(response.sourcePort == 1 << 30 && response.destinationPort == 7000)
        #expect(response.bufferAllocation == Self.buffer)
        #expect(c.peerCredit == 8192)
        #expect(c.outbound.isEmpty)
    }

    @Test func outOfStatePacketsResetTheConnection() {
        var requesting = VsockConnection.hostInitiated(guestCID: 3, hostPort: 9, guestPort: 7000, bufferSize: Self.buffer)
        #expect(requesting.receive(Self.fromGuest(.rw, length: 3), payload: [1, 2, 3]) == .reset)
        #expect(requesting.state == .closing)
        #expect(requesting.nextControlPacket()?.operation == .rst)
        #expect(requesting.nextControlPacket() == nil)

        var c = Self.established()
        #expect(c.receive(Self.fromGuest(.response)) == .reset)
        c = Self.established()
        #expect(c.receive(Self.fromGuest(.request)) == .reset)
        c = Self.established()
        var unknown = Self.fromGuest(.rw)
        unknown.op = 99
        #expect(c.receive(unknown) == .reset)
    }

    @Test func guestResetClosesWithoutReply() {
        var c = Self.established()
        #expect(c.receive(Self.fromGuest(.rst)) == .closed)
        var dying = Self.established()
        dying.kill()
        #expect(dying.receive(Self.fromGuest(.rw)) == .accepted)  // ignored: the RST is owed
        #expect(dying.receive(Self.fromGuest(.rst)) == .closed)
    }

    // MARK: Credit, host → guest

    @Test func peerCreditIsBufferLessInFlight() {
        var c = Self.established(bufferAllocation: 10_000)
        #expect(c.peerCredit == 10_000)
        _ = c.dataPacket(length: 4000)
        #expect(c.peerCredit == 6000)
        _ = c.dataPacket(length: 6000)
        #expect(c.peerCredit == 0)
        // The guest consumed 2500 bytes.
        #expect(c.receive(Self.fromGuest(.creditUpdate, bufferAllocation: 10_000, forwardCount: 2500)) == .accepted)
        #expect(c.peerCredit == 2500)
    }

    @Test func creditArithmeticWraps() {
        // Counters are free-running u32s: the guest's fwd_cnt may sit just below the wrap.
        var c = VsockConnection.guestInitiated(Self.fromGuest(.request, bufferAllocation: 1000, forwardCount: .max - 99),
                                               bufferSize: Self.buffer)
        // We have sent nothing (tx_cnt 0), so tx_cnt - fwd_cnt wraps to 100 in flight.
        #expect(c.peerCredit == 900)
        _ = c.dataPacket(length: 900)
        #expect(c.peerCredit == 0)
        #expect(c.receive(Self.fromGuest(.creditUpdate, bufferAllocation: 1000, forwardCount: 500)) == .accepted)
        #expect(c.peerCredit == 600)  // fwd_cnt wrapped past zero too
    }

    @Test func aGuestClaimingToHaveForwardedMoreThanItGotHasNoCredit() {
        var c = Self.established(bufferAllocation: 4096)
        _ = c.dataPacket(length: 100)
        #expect(c.receive(Self.fromGuest(.creditUpdate, bufferAllocation: 4096, forwardCount: 5000)) == .accepted)
        #expect(c.peerCredit == 0)
    }

    @Test func readInterestFollowsCredit() {
        var c = Self.established(bufferAllocation: 100)
        #expect(c.hostInterest == .readable)
        c.hostReadable = true
        #expect(c.hostInterest == [])  // bytes already waiting: no need to hear again
        #expect(c.canSendData)
        _ = c.dataPacket(length: 100)
        #expect(!c.canSendData)
        c.hostReadable = false
        #expect(c.hostInterest == [])  // no credit: leave the bytes in the socket
    }

    @Test func outOfCreditAsksOnceForAnUpdate() {
        var c = Self.established(bufferAllocation: 100)
        _ = c.dataPacket(length: 100)
        c.hostReadable = true
        #expect(c.hasPacketForGuest)
        #expect(c.nextControlPacket()?.operation == .creditRequest)
        #expect(!c.hasPacketForGuest)
        #expect(c.nextControlPacket() == nil)
        // Any packet back may carry the update, and a later shortage may ask again.
        #expect(c.receive(Self.fromGuest(.creditUpdate, bufferAllocation: 100, forwardCount: 0)) == .accepted)
        #expect(c.nextControlPacket()?.operation == .creditRequest)
    }

    // MARK: Credit, guest → host

    @Test func guestMaySendExactlyItsCreditAndNoMore() {
        var c = Self.established()
        #expect(c.guestCredit == Self.buffer)
        let chunk = [UInt8](repeating: 7, count: 64 * 1024)
        for _ in 0..<4 { #expect(c.receive(Self.fromGuest(.rw, length: chunk.count), payload: chunk) == .accepted) }
        #expect(c.queuedGuestBytes == Int(Self.buffer))
        #expect(c.guestCredit == 0)
        #expect(c.receive(Self.fromGuest(.rw, length: 1), payload: [1]) == .reset)
        #expect(c.outbound.isEmpty)  // dropped with the connection
    }

    @Test func forwardingOnlyRaisesCreditOnceTheGuestIsTold() throws {
        var c = Self.established()
        let chunk = [UInt8](repeating: 7, count: 64 * 1024)
        for _ in 0..<4 { _ = c.receive(Self.fromGuest(.rw, length: chunk.count), payload: chunk) }
        c.flushed(200 * 1024)
        #expect(c.forwardCount == 200 * 1024)
        // The guest still believes our buffer is full until a header says otherwise.
        #expect(c.guestCredit == 0)
        #expect(c.receive(Self.fromGuest(.rw, length: 1), payload: [1]) == .reset)
    }

    @Test func creditUpdateIsSentWhenTheGuestsViewRunsLow() throws {
        var c = Self.established()
        let chunk = [UInt8](repeating: 7, count: 64 * 1024)
        // 64 KiB in, forwarded: the guest still sees 192 KiB free, above the threshold.
        _ = c.receive(Self.fromGuest(.rw, length: chunk.count), payload: chunk)
        c.flushed(chunk.count)
        #expect(!c.hasPacketForGuest)
        // Two more: the guest sees 64 KiB free, below half the buffer.
        for _ in 0..<2 { _ = c.receive(Self.fromGuest(.rw, length: chunk.count), payload: chunk) }
        c.flushed(2 * chunk.count)
        let next = c.nextControlPacket()
        let update = try #require(next)
        #expect(update.operation == .creditUpdate)
        #expect(update.forwardCount == 3 * 64 * 1024)
        #expect(update.bufferAllocation == Self.buffer)
        #expect(c.guestCredit == Self.buffer)
        #expect(c.nextControlPacket() == nil)
    }

    @Test func dataPacketsCarryTheUpdateInstead() {
        var c = Self.established()
        let chunk = [UInt8](repeating: 7, count: 64 * 1024)
        for _ in 0..<3 { _ = c.receive(Self.fromGuest(.rw, length: chunk.count), payload: chunk) }
        c.flushed(3 * chunk.count)
        c.hostReadable = true
        #expect(c.nextControlPacket() == nil)  // a data packet will tell the guest
        let data = c.dataPacket(length: 10)
        #expect(data.operation == .rw && data.length == 10)
        #expect(data.forwardCount == 3 * 64 * 1024)
        c.hostReadable = false
        #expect(!c.hasPacketForGuest)
    }

    @Test func creditRequestIsAnswered() {
        var c = Self.established()
        #expect(c.receive(Self.fromGuest(.creditRequest)) == .accepted)
        #expect(c.nextControlPacket()?.operation == .creditUpdate)
    }

    // MARK: Shutdown

    @Test func hostEOFSendsShutdownSendAndTheGuestsShutdownFinishes() throws {
        var c = Self.established()
        c.hostReadable = true
        c.hostReachedEOF()
        #expect(!c.hostReadable)
        let next = c.nextControlPacket()
        let shutdown = try #require(next)
        #expect(shutdown.operation == .shutdown && shutdown.flags == Vsock.shutdownSend)
        #expect(!c.isFinished)
        // The guest may still send; then it shuts down its side.
        #expect(c.receive(Self.fromGuest(.rw, length: 2), payload: [1, 2]) == .accepted)
        #expect(c.receive(Self.fromGuest(.shutdown, flags: Vsock.shutdownSend)) == .accepted)
        #expect(!c.isFinished)  // two bytes still queued for the host
        c.flushed(2)
        #expect(c.shouldShutDownHostWrite)
        #expect(c.isFinished)
    }

    @Test func guestShutdownBothWaysFinishesOnceFlushed() {
        var c = Self.established()
        _ = c.receive(Self.fromGuest(.rw, length: 3), payload: [1, 2, 3])
        #expect(c.receive(Self.fromGuest(.shutdown, flags: 3)) == .accepted)
        #expect(c.hostInterest == .writable)  // no more reading for a guest that will not receive
        #expect(!c.isFinished)
        c.flushed(3)
        #expect(c.isFinished)
        #expect(c.receive(Self.fromGuest(.rw, length: 1), payload: [9]) == .reset)  // it promised
    }

    @Test func guestShutdownSendOnlyKeepsHostToGuestOpen() {
        var c = Self.established()
        #expect(c.receive(Self.fromGuest(.shutdown, flags: Vsock.shutdownSend)) == .accepted)
        #expect(c.shouldShutDownHostWrite)
        c.hostWriteWasShutDown()
        #expect(!c.shouldShutDownHostWrite)
        #expect(!c.isFinished)
        #expect(c.hostInterest == .readable)
    }

    // MARK: CONNECT lines

    @Test func connectLinesParse() {
        func parse(_ s: String) -> UInt32? { VsockHostLine.parseConnect(Array(s.utf8)) }
        #expect(parse("CONNECT 52\n") == 52)
        #expect(parse("connect 0\n") == 0)
        #expect(parse("Connect  4294967295\r\n") == 4_294_967_295)
        #expect(parse("CONNECT 4294967296\n") == nil)
        #expect(parse("CONNECT 52") == nil)
        #expect(parse("CONNECT\n") == nil)
        #expect(parse("CONNECT -1\n") == nil)
        #expect(parse("CONNECT +5\n") == nil)
        #expect(parse("CONNECT 5 6\n") == nil)
        #expect(parse("HELLO 5\n") == nil)
        #expect(parse("CONNECT 0x10\n") == nil)
        #expect(parse("CONNECT " + String(repeating: "0", count: 23) + "1\n") == nil)  // over 32 bytes
        #expect(VsockHostLine.ok(hostPort: 1 << 30) == Array("OK 1073741824\n".utf8))
    }

    @Test func byteQueueDrainsInOrderAcrossCompaction() {
        var q = ByteQueue()
        let a = pattern(100_000)
        q.append(a)
        q.removeFirst(70_000)  // past the compaction point
        q.append([1, 2, 3])
        #expect(q.count == 30_003)
        #expect(q.withFront { Array($0) } == Array(a[70_000...]) + [1, 2, 3])
        q.removeFirst(40_000)
        #expect(q.isEmpty)
    }
}
