import Devices
import GuestMemory
import Testing

/// Used buffer notification suppression (§2.7.7) and available buffer notification
/// suppression (§2.7.10) as the device side sees them.
@Suite struct NotificationTests {
    let memory: GuestMemory
    let driver: FakeDriver

    init() throws {
        memory = try testMemory()
        driver = FakeDriver(memory: memory, size: 8)
    }

    private func popAndPush(_ queue: SplitQueue) throws -> Bool {
        driver.addChain([.readable(0x8000, 16)])
        let chain = try #require(try queue.pop())
        return try queue.push(head: chain.head, length: 0)
    }

    @Test func withoutEventIndexTheFlagDecides() throws {
        let queue = try driver.makeQueue()
        #expect(try popAndPush(queue))
        driver.availFlags = Flag.noInterrupt
        #expect(try !popAndPush(queue))
        #expect(try !popAndPush(queue))
        driver.availFlags = 0
        #expect(try popAndPush(queue))
    }

    @Test func withEventIndexUsedEventDecidesAndTheFlagIsIgnored() throws {
        let queue = try driver.makeQueue(features: VirtioFeature.eventIndex)
        driver.availFlags = Flag.noInterrupt  // must be ignored (§2.7.7.2)
        driver.usedEvent = 0
        #expect(try popAndPush(queue))   // used idx 0 → 1 passes used_event 0
        #expect(try !popAndPush(queue))  // 1 → 2
        driver.usedEvent = 3
        #expect(try !popAndPush(queue))  // 2 → 3
        #expect(try popAndPush(queue))   // 3 → 4 writes the entry at index 3
        #expect(try !popAndPush(queue))
    }

    @Test func batchPassingUsedEventNotifiesOnce() throws {
        let queue = try driver.makeQueue(features: VirtioFeature.eventIndex)
        driver.usedEvent = 1
        for _ in 0..<3 { driver.addChain([.readable(0x8000, 16)]) }
        let heads = try (0..<3).map { _ in try #require(try queue.pop()).head }
        #expect(try queue.push(heads.map { (head: $0, length: 0) }))  // 0 → 3 passes 1
        driver.usedEvent = 1
        for _ in 0..<2 { driver.addChain([.readable(0x8000, 16)]) }
        let more = try (0..<2).map { _ in try #require(try queue.pop()).head }
        #expect(try !queue.push(more.map { (head: $0, length: 0) }))  // 3 → 5 does not
    }

    @Test(arguments: [
        // (event, new, old, expected): vring_need_event in wrapping 16-bit arithmetic.
        (UInt16(0), UInt16(1), UInt16(0), true),
        (0, 2, 1, false),
        (5, 10, 3, true),
        (5, 5, 3, false),
        (0xffff, 0, 0xffff, true),
        (0xfffe, 2, 0xfff0, true),
        (3, 2, 0xfff0, false),
        (7, 7, 7, false),
    ])
    func needsEventMatchesTheSpec(event: UInt16, new: UInt16, old: UInt16, expected: Bool) {
        #expect(SplitQueue.needsEvent(event: event, new: new, old: old) == expected)
    }

    @Test func usedEventAcrossTheWrap() throws {
        let queue = try driver.makeQueue(features: VirtioFeature.eventIndex)
        for _ in 0..<65535 { _ = try popAndPush(queue) }
        driver.usedEvent = 0xffff
        #expect(try popAndPush(queue))   // 0xffff → 0
        driver.usedEvent = 0
        #expect(try popAndPush(queue))   // 0 → 1
    }

    /// With EVENT_IDX the device publishes, in avail_event, the next slot it will read, so the
    /// driver kicks exactly when it fills that slot (§2.7.10).
    @Test func popPublishesAvailEvent() throws {
        let queue = try driver.makeQueue(features: VirtioFeature.eventIndex)
        #expect(try queue.pop() == nil)
        #expect(driver.availEvent == 0)
        driver.addChain([.readable(0x8000, 16)])
        driver.addChain([.readable(0x8000, 16)])
        _ = try queue.pop()
        _ = try queue.pop()
        #expect(try queue.pop() == nil)
        #expect(driver.availEvent == 2)
    }

    @Test func withoutEventIndexAvailEventIsNotWritten() throws {
        let queue = try driver.makeQueue()
        try memory.store(UInt16(0x5a5a), at: driver.usedRing + 4 + 8 * 8)
        driver.addChain([.readable(0x8000, 16)])
        _ = try queue.pop()
        #expect(try queue.pop() == nil)
        #expect(driver.availEvent == 0x5a5a)
    }
}
