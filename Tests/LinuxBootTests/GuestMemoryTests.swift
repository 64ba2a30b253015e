import GuestMemory
import Testing

@Suite struct GuestMemoryTests {
    @Test func readsAndWritesInsideRegions() throws {
        let mem = try GuestMemory(layout: [(0, 0x10000), (0x100000, 0x10000)])
        try mem.write([1, 2, 3], at: 0xfffd)
        #expect(try mem.read(at: 0xfffd, count: 3) == [1, 2, 3])
        try mem.store(UInt32(0xdead_beef), at: 0x100000)
        #expect(try mem.read(at: 0x100000, count: 4) == [0xef, 0xbe, 0xad, 0xde])
        #expect(try mem.load(UInt32.self, at: 0x100000) == 0xdead_beef)
        #expect(mem.totalSize == 0x20000)
    }

    @Test func refusesAccessesOutsideOrAcrossRegions() throws {
        let mem = try GuestMemory(layout: [(0, 0x10000), (0x10000 + 0x1000, 0x10000)])
        #expect(throws: GuestMemoryError.outOfBounds(address: 0xffff, length: 2)) { try mem.read(at: 0xffff, count: 2) }
        #expect(throws: GuestMemoryError.self) { try mem.write([0], at: 0x10000) }
        #expect(throws: GuestMemoryError.self) { try mem.load(UInt64.self, at: UInt64.max - 3) }
        #expect(!mem.contains(0x21000, length: 1))
        #expect(mem.contains(0x11000, length: 0x10000))
    }

    /// Each region's host address agrees with its guest address in the low 21 bits, so the host
    /// may back it with 2 MiB pages and KVM may map them whole; the memory is all usable, ends included.
    @Test func regionsAreAlignedForHugePages() throws {
        let huge = GuestMemory.hugePageSize
        for layout in [[(UInt64(0), UInt64(64) << 20)], [(0, 0x10000), (0x100000, 0x30_1000)], [(0x20_3000, 0x5000)]] {
            let mem = try GuestMemory(layout: layout)
            for region in mem.regions {
                #expect(UInt64(UInt(bitPattern: region.host)) % huge == region.guestAddress % huge, "\(layout)")
                try mem.write([0xa5], at: region.guestAddress)
                try mem.write([0x5a], at: region.end - 1)
                #expect(try mem.read(at: region.guestAddress, count: 1) == [0xa5])
                #expect(try mem.read(at: region.end - 1, count: 1) == [0x5a])
            }
        }
    }

    @Test func rejectsBadLayouts() {
        #expect(throws: GuestMemoryError.self) { try GuestMemory(layout: []) }
        #expect(throws: GuestMemoryError.self) { try GuestMemory(layout: [(0, 100)]) }
        #expect(throws: GuestMemoryError.self) { try GuestMemory(layout: [(0, 0x2000), (0x1000, 0x1000)]) }
    }
}
