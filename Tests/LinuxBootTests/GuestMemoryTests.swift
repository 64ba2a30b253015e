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

    @Test func rejectsBadLayouts() {
        #expect(throws: GuestMemoryError.self) { try GuestMemory(layout: []) }
        #expect(throws: GuestMemoryError.self) { try GuestMemory(layout: [(0, 100)]) }
        #expect(throws: GuestMemoryError.self) { try GuestMemory(layout: [(0, 0x2000), (0x1000, 0x1000)]) }
    }
}
