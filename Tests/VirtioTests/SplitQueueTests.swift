import Devices
import GuestMemory
import Testing

/// Well-formed traffic through a split virtqueue (§2.7.13, §2.7.14) and the copy helpers.
@Suite struct SplitQueueTests {
    let memory: GuestMemory
    let driver: FakeDriver

    init() throws {
        memory = try testMemory()
        driver = FakeDriver(memory: memory, size: 8)
    }

    @Test func emptyQueuePopsNothing() throws {
        let queue = try driver.makeQueue()
        #expect(try queue.pop() == nil)
        #expect(queue.nextAvailIndex == 0)
    }

    @Test func singleReadableChainRoundTrip() throws {
        let queue = try driver.makeQueue()
        try memory.write(Array("hello".utf8), at: 0x8000)
        let head = driver.addChain([.readable(0x8000, 5)])
        let chain = try #require(try queue.pop())
        #expect(chain.head == head)
        #expect(chain.readable == [VirtqueueBuffer(address: 0x8000, length: 5)])
        #expect(chain.writable.isEmpty)
        #expect(chain.readableLength == 5 && chain.writableLength == 0)
        #expect(try chain.readReadable(maxBytes: 100) == Array("hello".utf8))
        #expect(try queue.pop() == nil)

        #expect(try queue.push(head: chain.head, length: 0))
        #expect(driver.usedIndex == 1)
        #expect(driver.usedElement(0) == (id: UInt32(head), length: 0))
    }

    @Test func multipleChainsComeOutInOrder() throws {
        let queue = try driver.makeQueue()
        let a = driver.addChain([.readable(0x8000, 16)])
        let b = driver.addChain([.readable(0x8100, 16), .readable(0x8200, 32)])
        let c = driver.addChain([.writable(0x8300, 64)])
        let chains = [try queue.pop(), try queue.pop(), try queue.pop()].compactMap { $0 }
        #expect(chains.map(\.head) == [a, b, c])
        #expect(chains[1].readableLength == 48)
        #expect(chains[2].writableLength == 64)
        #expect(try queue.pop() == nil)
        // Returned out of order, as devices may (§2.7.8: id names the chain).
        _ = try queue.push([(head: c, length: 64), (head: a, length: 0)])
        #expect(driver.usedIndex == 2)
        #expect(driver.usedElement(0) == (id: UInt32(c), length: 64))
        #expect(driver.usedElement(1) == (id: UInt32(a), length: 0))
    }

    @Test func chainAsLongAsTheQueueIsNotALoop() throws {
        let queue = try driver.makeQueue()
        driver.addChain((0..<8).map { .readable(0x8000 + UInt64($0) * 0x10, 0x10) })
        let chain = try #require(try queue.pop())
        #expect(chain.readable.count == 8)
    }

    @Test func readableThenWritableChain() throws {
        let queue = try driver.makeQueue()
        driver.addChain([.readable(0x8000, 8), .readable(0x9000, 8), .writable(0xa000, 4), .writable(0xb000, 12)])
        let chain = try #require(try queue.pop())
        #expect(chain.readable.map(\.address) == [0x8000, 0x9000])
        #expect(chain.writable.map(\.address) == [0xa000, 0xb000])
        #expect(chain.readableLength == 16 && chain.writableLength == 16)
    }

    /// The available and used indices are free-running u16s that wrap at 65536 (§2.7.13.3).
    @Test func indicesWrapAcross65536() throws {
        let small = FakeDriver(memory: memory, size: 4)
        let queue = try small.makeQueue()
        for i in 0..<(65536 + 6) {
            let head = small.addChain([.readable(0x8000, UInt32(1 + i % 7))])
            let chain = try #require(try queue.pop())
            #expect(chain.head == head)
            #expect(chain.readableLength == 1 + i % 7)
            _ = try queue.push(head: chain.head, length: UInt32(i % 7))
        }
        #expect(queue.nextAvailIndex == 6)
        #expect(small.usedIndex == 6)
        #expect(small.usedElement(5).length == UInt32((65536 + 5) % 7))
    }

    @Test func wrapWithSeveralChainsOutstanding() throws {
        let small = FakeDriver(memory: memory, size: 4)
        let queue = try small.makeQueue()
        for _ in 0..<65534 {
            small.addChain([.readable(0x8000, 1)])
            let chain = try #require(try queue.pop())
            _ = try queue.push(head: chain.head, length: 0)
        }
        // avail idx goes 65534 → 2 across the wrap with four chains outstanding.
        let heads = (0..<4).map { small.addChain([.readable(0x8000 + UInt64($0), 1)]) }
        #expect(small.availIndex == 2)
        #expect(try (0..<4).map { _ in try queue.pop()?.head } == heads)
        #expect(try queue.pop() == nil)
    }

    @Test func indirectTable() throws {
        let queue = try driver.makeQueue(features: VirtioFeature.indirectDescriptors)
        let head = driver.addIndirectChain([.readable(0x8000, 10), .readable(0x9000, 20), .writable(0xa000, 30)],
                                           table: 0x4000)
        let chain = try #require(try queue.pop())
        #expect(chain.head == head)
        #expect(chain.readable == [VirtqueueBuffer(address: 0x8000, length: 10), VirtqueueBuffer(address: 0x9000, length: 20)])
        #expect(chain.writable == [VirtqueueBuffer(address: 0xa000, length: 30)])
    }

    /// §2.7.5.3.2: ordinary descriptors followed by one indirect descriptor.
    @Test func directDescriptorsThenAnIndirectTable() throws {
        let queue = try driver.makeQueue(features: VirtioFeature.indirectDescriptors)
        driver.addIndirectChain([.writable(0xa000, 30)], table: 0x4000, direct: [.readable(0x8000, 10)])
        let chain = try #require(try queue.pop())
        #expect(chain.readable.map(\.address) == [0x8000])
        #expect(chain.writable.map(\.address) == [0xa000])
    }

    /// §2.7.5.3.2: the WRITE flag on the descriptor that points at a table is ignored.
    @Test func writeFlagOnTheIndirectDescriptorIsIgnored() throws {
        let queue = try driver.makeQueue(features: VirtioFeature.indirectDescriptors)
        driver.writeDescriptor(0, 0x8000, 16, table: 0x4000)
        driver.writeDescriptor(0, 0x4000, 16, flags: Flag.indirect | Flag.write)
        driver.publish(0)
        let chain = try #require(try queue.pop())
        #expect(chain.readable.count == 1 && chain.writable.isEmpty)
    }

    // MARK: Copy helpers

    @Test func readingIsBoundedByTheCallersMaximum() throws {
        let queue = try driver.makeQueue()
        try memory.write(Array(0..<8), at: 0x8000)
        try memory.write(Array(8..<20), at: 0x9000)
        driver.addChain([.readable(0x8000, 8), .readable(0x9000, 12), .writable(0xa000, 4)])
        let chain = try #require(try queue.pop())
        #expect(try chain.readReadable(maxBytes: 100) == Array(0..<20))
        #expect(try chain.readReadable(maxBytes: 10) == Array(0..<10))
        #expect(try chain.readReadable(from: 6, maxBytes: 4) == [6, 7, 8, 9])
        #expect(try chain.readReadable(from: 8, maxBytes: 100) == Array(8..<20))
        #expect(try chain.readReadable(from: 20, maxBytes: 100) == [])
        #expect(try chain.readReadable(maxBytes: 0) == [])
        #expect(try chain.readReadable(from: -5, maxBytes: -1) == [])
    }

    @Test func writingFillsWritableBuffersAndSaysHowMuchFitted() throws {
        let queue = try driver.makeQueue()
        driver.addChain([.readable(0x8000, 4), .writable(0xa000, 3), .writable(0xb000, 5)])
        let chain = try #require(try queue.pop())
        #expect(try chain.writeWritable(Array(1...10)) == 8)
        #expect(try memory.read(at: 0xa000, count: 3) == [1, 2, 3])
        #expect(try memory.read(at: 0xb000, count: 6) == [4, 5, 6, 7, 8, 0])
        #expect(try chain.writeWritable([0xee, 0xff], at: 2) == 2)
        #expect(try memory.read(at: 0xa000, count: 3) == [1, 2, 0xee])
        #expect(try memory.read(at: 0xb000, count: 1) == [0xff])
        #expect(try chain.writeWritable([1], at: 8) == 0)
        #expect(try memory.read(at: 0x8000, count: 4) == [0, 0, 0, 0])  // readable buffer untouched
    }
}
