import Devices
import GuestMemory
import Testing

/// One test per rule a hostile driver can break (virtio 1.2 §2.7). Each expects the exact
/// error, so removing the check it covers makes it fail (a different error, or none).
@Suite struct HostileQueueTests {
    let memory: GuestMemory
    let driver: FakeDriver

    init() throws {
        memory = try testMemory()
        driver = FakeDriver(memory: memory, size: 8)
    }

    // MARK: Descriptor walks

    @Test func selfLoopIsRejected() throws {
        let queue = try driver.makeQueue()
        driver.writeDescriptor(0, 0x8000, 0x1000, flags: Flag.next, next: 0)
        driver.publish(0)
        #expect(throws: VirtqueueError.descriptorLoop(head: 0, limit: 8)) { try queue.pop() }
    }

    @Test func loopThroughSeveralDescriptorsIsRejected() throws {
        let queue = try driver.makeQueue()
        driver.writeDescriptor(2, 0x8000, 0x1000, flags: Flag.next, next: 5)
        driver.writeDescriptor(5, 0x9000, 0x1000, flags: Flag.next, next: 7)
        driver.writeDescriptor(7, 0xa000, 0x1000, flags: Flag.next, next: 2)
        driver.publish(2)
        #expect(throws: VirtqueueError.descriptorLoop(head: 2, limit: 8)) { try queue.pop() }
    }

    @Test func loopInsideIndirectTableIsBoundedByTheTable() throws {
        let queue = try driver.makeQueue(features: VirtioFeature.indirectDescriptors)
        let table: UInt64 = 0x4000
        driver.writeDescriptor(0, 0x8000, 0x1_0000, flags: Flag.next, next: 1, table: table)
        driver.writeDescriptor(1, 0x9000, 0x1_0000, flags: Flag.next, next: 0, table: table)
        driver.writeDescriptor(0, table, 32, flags: Flag.indirect)
        driver.publish(0)
        #expect(throws: VirtqueueError.descriptorLoop(head: 0, limit: 2)) { try queue.pop() }
    }

    @Test func nextPastTheQueueIsRejected() throws {
        let queue = try driver.makeQueue()
        driver.writeDescriptor(3, 0x8000, 0x100, flags: Flag.next, next: 8)
        driver.publish(3)
        #expect(throws: VirtqueueError.nextOutOfRange(head: 3, next: 8, tableEntries: 8)) { try queue.pop() }
    }

    @Test func nextPastAnIndirectTableIsRejectedEvenIfInsideTheQueue() throws {
        let queue = try driver.makeQueue(features: VirtioFeature.indirectDescriptors)
        let table: UInt64 = 0x4000
        driver.writeDescriptor(0, 0x8000, 0x100, flags: Flag.next, next: 2, table: table)  // table has 2 entries
        driver.writeDescriptor(1, 0x9000, 0x100, table: table)
        driver.writeDescriptor(0, table, 32, flags: Flag.indirect)
        driver.publish(0)
        #expect(throws: VirtqueueError.nextOutOfRange(head: 0, next: 2, tableEntries: 2)) { try queue.pop() }
    }

    @Test func headPastTheQueueIsRejected() throws {
        let queue = try driver.makeQueue()
        driver.publish(8)
        #expect(throws: VirtqueueError.headOutOfRange(head: 8, size: 8)) { try queue.pop() }
    }

    // MARK: Available index

    @Test func availIndexMoreThanAQueueAheadIsRejected() throws {
        let queue = try driver.makeQueue()
        driver.setAvailIndex(9)
        #expect(throws: VirtqueueError.availIndexTooFarAhead(availIndex: 9, consumed: 0, size: 8)) { try queue.pop() }
    }

    @Test func availIndexMovedBackwardsReadsAsFarAheadInWrappingArithmetic() throws {
        let queue = try driver.makeQueue()
        driver.addChain([.readable(0x8000, 16)])
        _ = try queue.pop()
        driver.setAvailIndex(0)  // "un-exposing" a buffer: 0 - 1 wraps to 65535 pending
        #expect(throws: VirtqueueError.availIndexTooFarAhead(availIndex: 0, consumed: 1, size: 8)) { try queue.pop() }
    }

    @Test func exactlyAQueueAheadIsAccepted() throws {
        let queue = try driver.makeQueue()
        for i in 0..<8 { driver.addChain([.readable(0x8000 + UInt64(i) * 0x100, 0x100)]) }
        for _ in 0..<8 { #expect(try queue.pop() != nil) }
        #expect(try queue.pop() == nil)
    }

    // MARK: Buffers and memory

    @Test func bufferPastTheEndOfRAMIsRejected() throws {
        let queue = try driver.makeQueue()
        driver.writeDescriptor(0, 0xf_ff00, 0x200)  // RAM ends at 0x10_0000
        driver.publish(0)
        #expect(throws: VirtqueueError.bufferOutsideMemory(head: 0, address: 0xf_ff00, length: 0x200)) { try queue.pop() }
    }

    @Test func bufferEntirelyOutsideRAMIsRejected() throws {
        let queue = try driver.makeQueue()
        driver.writeDescriptor(0, 0x8000, 0x10, flags: Flag.next, next: 1)
        driver.writeDescriptor(1, 0x4000_0000, 0x10, flags: Flag.write)
        driver.publish(0)
        #expect(throws: VirtqueueError.bufferOutsideMemory(head: 0, address: 0x4000_0000, length: 0x10)) { try queue.pop() }
    }

    @Test func zeroLengthDescriptorIsRejected() throws {
        let queue = try driver.makeQueue()
        driver.writeDescriptor(0, 0x8000, 0x10, flags: Flag.next, next: 1)
        driver.writeDescriptor(1, 0x9000, 0)
        driver.publish(0)
        #expect(throws: VirtqueueError.zeroLengthDescriptor(head: 0)) { try queue.pop() }
    }

    /// §2.7.5.2: a chain of 2^32 bytes or more. The two 2 GiB buffers are real RAM (mapped lazily,
    /// never touched), so only the length check can refuse them.
    @Test func chainOf4GiBIsRejected() throws {
        let big = try testMemory(size: 0x8010_0000)
        let driver = FakeDriver(memory: big, size: 8)
        let queue = try driver.makeQueue()
        driver.writeDescriptor(0, 0x10_0000, 0x8000_0000, flags: Flag.next, next: 1)
        driver.writeDescriptor(1, 0x10_0000, 0x8000_0000)
        driver.publish(0)
        #expect(throws: VirtqueueError.chainTooLong(head: 0)) { try queue.pop() }
    }

    @Test func chainJustUnder4GiBIsAccepted() throws {
        let big = try testMemory(size: 0x8010_0000)
        let driver = FakeDriver(memory: big, size: 8)
        let queue = try driver.makeQueue()
        driver.writeDescriptor(0, 0x10_0000, 0x8000_0000, flags: Flag.next, next: 1)
        driver.writeDescriptor(1, 0x10_0000, 0x7fff_ffff)
        driver.publish(0)
        let chain = try #require(try queue.pop())
        #expect(chain.readableLength == 0xffff_ffff)
    }

    // MARK: Direction (§2.7.4.2)

    @Test func readableAfterWritableIsRejected() throws {
        let queue = try driver.makeQueue()
        driver.addChain([.readable(0x8000, 16), .writable(0x9000, 16), .readable(0xa000, 16)])
        #expect(throws: VirtqueueError.readableAfterWritable(head: 0)) { try queue.pop() }
    }

    @Test func readableAfterWritableAcrossIntoAnIndirectTableIsRejected() throws {
        let queue = try driver.makeQueue(features: VirtioFeature.indirectDescriptors)
        driver.addIndirectChain([.readable(0xa000, 16)], table: 0x4000, direct: [.writable(0x9000, 16)])
        #expect(throws: VirtqueueError.readableAfterWritable(head: 0)) { try queue.pop() }
    }

    @Test func readableOnlyHelperRefusesWritableBuffers() throws {
        let queue = try driver.makeQueue()
        driver.addChain([.readable(0x8000, 16), .writable(0x9000, 16)])
        let chain = try #require(try queue.pop())
        #expect(throws: VirtqueueError.unexpectedWritableBuffer(head: 0)) { try chain.requireReadableOnly() }
        #expect(throws: VirtqueueError.unexpectedReadableBuffer(head: 0)) { try chain.requireWritableOnly() }
    }

    @Test func directionHelpersPassMatchingChains() throws {
        let queue = try driver.makeQueue()
        driver.addChain([.readable(0x8000, 16)])
        driver.addChain([.writable(0x9000, 16)])
        #expect(try queue.pop()?.requireReadableOnly().head == 0)
        #expect(try queue.pop()?.requireWritableOnly().head == 1)
    }

    // MARK: Indirect tables (§2.7.5.3.1)

    @Test func indirectInsideIndirectIsRejected() throws {
        let queue = try driver.makeQueue(features: VirtioFeature.indirectDescriptors)
        let table: UInt64 = 0x4000
        driver.writeDescriptor(0, 0x8000, 16, flags: Flag.next, next: 1, table: table)
        driver.writeDescriptor(1, 0x5000, 16, flags: Flag.indirect, table: table)
        driver.writeDescriptor(0, 0x8000, 16, table: 0x5000)
        driver.writeDescriptor(0, table, 32, flags: Flag.indirect)
        driver.publish(0)
        #expect(throws: VirtqueueError.nestedIndirect(head: 0)) { try queue.pop() }
    }

    @Test(arguments: [UInt32(0), 8, 24, 17])
    func indirectTableOfBadLengthIsRejected(length: UInt32) throws {
        let queue = try driver.makeQueue(features: VirtioFeature.indirectDescriptors)
        driver.writeDescriptor(0, 0x8000, 16, table: 0x4000)
        driver.writeDescriptor(0, 0x4000, length, flags: Flag.indirect)
        driver.publish(0)
        #expect(throws: VirtqueueError.invalidIndirectTableLength(head: 0, length: length)) { try queue.pop() }
    }

    @Test func indirectTableOfMoreThan65536EntriesIsRejected() throws {
        let big = try testMemory(size: 0x20_0000)
        let driver = FakeDriver(memory: big, size: 8)
        let queue = try driver.makeQueue(features: VirtioFeature.indirectDescriptors)
        driver.writeDescriptor(0, 0x8000, 16, table: 0x10_0000)
        driver.writeDescriptor(0, 0x10_0000, 16 * 65537, flags: Flag.indirect)
        driver.publish(0)
        #expect(throws: VirtqueueError.invalidIndirectTableLength(head: 0, length: 16 * 65537)) { try queue.pop() }
    }

    @Test func indirectWithNextIsRejected() throws {
        let queue = try driver.makeQueue(features: VirtioFeature.indirectDescriptors)
        driver.writeDescriptor(0, 0x8000, 16, table: 0x4000)
        driver.writeDescriptor(0, 0x4000, 16, flags: Flag.indirect | Flag.next, next: 1)
        driver.writeDescriptor(1, 0x9000, 16)
        driver.publish(0)
        #expect(throws: VirtqueueError.indirectWithNext(head: 0)) { try queue.pop() }
    }

    @Test func indirectWithoutTheFeatureIsRejected() throws {
        let queue = try driver.makeQueue()
        driver.addIndirectChain([.readable(0x8000, 16)], table: 0x4000)
        #expect(throws: VirtqueueError.indirectNotNegotiated(head: 0)) { try queue.pop() }
    }

    @Test func indirectTableOutsideRAMIsRejected() throws {
        let queue = try driver.makeQueue(features: VirtioFeature.indirectDescriptors)
        driver.writeDescriptor(0, 0xf_fff0, 32, flags: Flag.indirect)
        driver.publish(0)
        #expect(throws: VirtqueueError.indirectTableOutsideMemory(head: 0, address: 0xf_fff0, length: 32)) {
            try queue.pop()
        }
    }

    // MARK: Queue configuration (§2.7, §4.2.3.2)

    @Test(arguments: [0, 3, 6, 100, 512, 65536])
    func invalidQueueSizeIsRejected(size: Int) throws {
        let e = virtqueueError {
            try SplitQueue(size: size, maximumSize: 256, descriptorTable: 0x1000, availableRing: 0x3000,
                           usedRing: 0x4000, memory: memory)
        }
        #expect(e == .invalidSize(size: size, maximum: 256))
    }

    @Test func deviceMaximumAboveTheSpecsIsClampedTo32768() throws {
        let big = try testMemory(size: 0x80_0000)
        #expect(throws: VirtqueueError.invalidSize(size: 65536, maximum: 32768)) {
            try SplitQueue(size: 65536, maximumSize: 65536, descriptorTable: 0x10_0000, availableRing: 0x30_0000,
                           usedRing: 0x40_0000, memory: big)
        }
        #expect(throws: Never.self) {
            try SplitQueue(size: 32768, maximumSize: 65536, descriptorTable: 0x10_0000, availableRing: 0x30_0000,
                           usedRing: 0x40_0000, memory: big)
        }
    }

    static let misaligned: [(UInt64, UInt64, UInt64, VirtqueuePart, UInt64)] = [
        (0x1008, 0x3000, 0x4000, .descriptorTable, 16),
        (0x1000, 0x3001, 0x4000, .availableRing, 2),
        (0x1000, 0x3000, 0x4002, .usedRing, 4),
    ]

    @Test(arguments: misaligned)
    func misalignedRingIsRejected(desc: UInt64, avail: UInt64, used: UInt64, part: VirtqueuePart, alignment: UInt64) {
        let address: UInt64 = switch part { case .descriptorTable: desc; case .availableRing: avail; case .usedRing: used }
        let e = virtqueueError {
            try SplitQueue(size: 8, maximumSize: 256, descriptorTable: desc, availableRing: avail, usedRing: used,
                           memory: memory)
        }
        #expect(e == .misalignedRing(part, address: address, alignment: alignment))
    }

    static let outside: [(UInt64, UInt64, UInt64, VirtqueuePart, UInt64)] = [
        (0xf_ff90, 0x3000, 0x4000, .descriptorTable, 128),
        (0x1000, 0xf_fff8, 0x4000, .availableRing, 22),
        (0x1000, 0x3000, 0xf_ffe0, .usedRing, 70),
        (0xffff_ffff_ffff_fff0, 0x3000, 0x4000, .descriptorTable, 128),  // address + length wraps
    ]

    @Test(arguments: outside)
    func ringOutsideRAMIsRejected(desc: UInt64, avail: UInt64, used: UInt64, part: VirtqueuePart, length: UInt64) {
        let address: UInt64 = switch part { case .descriptorTable: desc; case .availableRing: avail; case .usedRing: used }
        let e = virtqueueError {
            try SplitQueue(size: 8, maximumSize: 256, descriptorTable: desc, availableRing: avail, usedRing: used,
                           memory: memory)
        }
        #expect(e == .ringOutsideMemory(part, address: address, length: length))
    }

    // MARK: Device-side mistakes and stopping

    @Test func pushingAHeadOutsideTheQueueIsRejected() throws {
        let queue = try driver.makeQueue()
        #expect(throws: VirtqueueError.usedHeadOutOfRange(head: 8, size: 8)) { try queue.push(head: 8, length: 0) }
        #expect(driver.usedIndex == 0)
    }

    @Test func anErrorStopsTheQueueEvenAfterTheGuestRepairsIt() throws {
        let queue = try driver.makeQueue()
        driver.setAvailIndex(100)
        #expect(throws: VirtqueueError.availIndexTooFarAhead(availIndex: 100, consumed: 0, size: 8)) { try queue.pop() }
        driver.setAvailIndex(0)
        driver.addChain([.readable(0x8000, 16)])
        #expect(throws: VirtqueueError.availIndexTooFarAhead(availIndex: 100, consumed: 0, size: 8)) { try queue.pop() }
        #expect(throws: VirtqueueError.availIndexTooFarAhead(availIndex: 100, consumed: 0, size: 8)) {
            try queue.push(head: 0, length: 0)
        }
        #expect(queue.isStopped)
    }

    @Test func aStoppedQueueNoLongerTouchesGuestMemory() throws {
        let queue = try driver.makeQueue(features: VirtioFeature.eventIndex)
        driver.addChain([.readable(0x8000, 16)])
        let chain = try #require(try queue.pop())
        queue.stop()
        try memory.store(UInt16(0xabcd), at: driver.usedRing + 4 + 8 * 8)  // avail_event sentinel
        #expect(throws: VirtqueueError.stopped) { try queue.push(head: chain.head, length: 0) }
        #expect(throws: VirtqueueError.stopped) { try queue.pop() }
        #expect(driver.usedIndex == 0)
        #expect(driver.availEvent == 0xabcd)
    }
}
