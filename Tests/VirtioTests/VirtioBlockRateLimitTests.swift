import Devices
import Testing

/// A rate-limited disk serves its queue only as fast as its buckets refill: the device's clock
/// and its timers are the test's, so these count tokens, not wall-clock time.
@Suite struct VirtioBlockRateLimitTests {
    static func flushes(_ guest: BlockGuest, _ count: Int) {
        for _ in 0..<count { guest.submit([.readable(guest.header(Blk.typeFlush), 16), guest.statusBuffer()]) }
        guest.notify()
    }

    @Test func anUnlimitedDiskServesEverythingAtOnce() throws {
        let guest = try BlockGuest()
        guest.probe()
        Self.flushes(guest, 5)
        #expect(guest.driver.usedIndex == 5)
        #expect(guest.registry.pendingTimers == 0)
    }

    @Test func operationsPerSecondPaceTheQueue() throws {
        let guest = try BlockGuest(operationsPerSecond: RateLimiter.Limit(perSecond: 2))
        guest.probe()
        Self.flushes(guest, 5)
        #expect(guest.driver.usedIndex == 2)  // the burst
        #expect(guest.registry.pendingTimers == 1)
        #expect(guest.device.diagnostics[2].hasSuffix("holding a request true, timer armed true"))
        // Kicks while it waits serve nothing and arm no more timers: a guest cannot make it spin.
        for _ in 0..<10 { guest.notify() }
        #expect(guest.driver.usedIndex == 2)
        #expect(guest.registry.pendingTimers == 1)

        #expect(guest.wait(seconds: 0.25) == 0)  // half a token: the timer is not due
        #expect(guest.driver.usedIndex == 2)
        #expect(guest.wait(seconds: 0.25) == 1)
        #expect(guest.driver.usedIndex == 3)
        guest.wait(seconds: 0.5)
        #expect(guest.driver.usedIndex == 4)
        guest.wait(seconds: 0.5)
        #expect(guest.driver.usedIndex == 5)
        #expect(guest.registry.pendingTimers == 0)
        #expect(guest.takeReplies().allSatisfy { $0 == BlockReply(status: Blk.ok, used: 1) })
    }

    @Test func bytesPerSecondChargeTheDataMoved() throws {
        let guest = try BlockGuest(bytesPerSecond: RateLimiter.Limit(perSecond: 1024))
        guest.probe()
        #expect(guest.read(sector: 0, count: 2).0 == BlockReply(status: Blk.ok, used: 1025))  // the whole burst
        // Requests without data cost no bytes.
        #expect(guest.flush() == BlockReply(status: Blk.ok, used: 1))
        guest.submit([.readable(guest.header(Blk.typeIn, sector: 2), 16), .writable(BlockGuest.dataArea, 512), guest.statusBuffer()])
        guest.notify()
        #expect(guest.takeReplies().isEmpty)
        #expect(guest.wait(seconds: 0.4) == 0)
        #expect(guest.takeReplies().isEmpty)
        guest.wait(seconds: 0.1)
        #expect(guest.takeReplies() == [BlockReply(status: Blk.ok, used: 513)])
        #expect(guest.bytes(BlockGuest.dataArea, 512) == TemporaryDisk.pattern(1024..<1536))
    }

    /// A request larger than the burst goes through on a full bucket and is paid off afterwards.
    @Test func aRequestLargerThanTheBurstIsPaidOffLater() throws {
        let guest = try BlockGuest(bytesPerSecond: RateLimiter.Limit(perSecond: 512))
        guest.probe()
        #expect(guest.read(sector: 0, count: 4).0 == BlockReply(status: Blk.ok, used: 2049))
        guest.submit([.readable(guest.header(Blk.typeIn, sector: 0), 16), .writable(BlockGuest.dataArea, 512), guest.statusBuffer()])
        guest.notify()
        // 1536 bytes owed, then 512 for this one: 4 s at 512 B/s.
        guest.wait(seconds: 3.9)
        #expect(guest.takeReplies().isEmpty)
        guest.wait(seconds: 0.1)
        #expect(guest.takeReplies() == [BlockReply(status: Blk.ok, used: 513)])
    }

    @Test func aResetDropsTheHeldRequestAndItsTimerDoesNothing() throws {
        let guest = try BlockGuest(operationsPerSecond: RateLimiter.Limit(perSecond: 1))
        guest.probe()
        Self.flushes(guest, 2)
        #expect(guest.driver.usedIndex == 1)
        guest.write(Reg.status, 0)
        guest.wait(seconds: 2)
        #expect(guest.driver.usedIndex == 1)  // the stale timer served nothing
        #expect(guest.device.diagnostics[2].hasSuffix("holding a request false, timer armed false"))
    }
}
