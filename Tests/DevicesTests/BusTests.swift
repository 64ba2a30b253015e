import Devices
import Dispatch
import POSIX
import Testing

@Suite struct BusTests {
    @Test func resolvesEveryAddressToItsDeviceAndOffset() throws {
        // 64 windows of 4 ports with 4-port gaps, inserted out of order.
        var bus = Bus()
        let devices = (0..<64).map { _ in ProbeDevice() }
        for i in (0..<64).reversed() { try bus.insert(devices[i], base: UInt64(8 * i), length: 4) }
        #expect(bus.entries.map(\.base) == (0..<64).map { UInt64(8 * $0) })
        for address in UInt64(0)..<8 * 64 + 8 {
            let hit = bus.resolve(address)
            if address % 8 < 4 && address < 8 * 64 {
                #expect(hit?.device === devices[Int(address / 8)], "address \(address)")
                #expect(hit?.offset == address % 8)
            } else {
                #expect(hit == nil, "address \(address) is in a gap")
            }
        }
    }

    @Test func rejectsOverlapsAndEmptyRanges() throws {
        var bus = Bus()
        try bus.insert(ProbeDevice(), base: 0x3f8, length: 8)
        for (base, length): (UInt64, UInt64) in [(0x3f8, 8), (0x3f0, 9), (0x3ff, 1), (0x3fa, 2), (0x3f0, 0x20)] {
            #expect(throws: BusError.overlap(base: base, length: length)) {
                try bus.insert(ProbeDevice(), base: base, length: length)
            }
        }
        #expect(throws: BusError.emptyRange(base: 0x100)) { try bus.insert(ProbeDevice(), base: 0x100, length: 0) }
        // Neighbours on either side fit.
        try bus.insert(ProbeDevice(), base: 0x3f0, length: 8)
        try bus.insert(ProbeDevice(), base: 0x400, length: 1)
        #expect(bus.entries.count == 3)
    }

    @Test func readsGoToTheDeviceAndUnclaimedAddressesReadAllOnes() throws {
        var bus = Bus()
        let filled = ProbeDevice(fill: 0x42), silent = ProbeDevice()
        try bus.insert(filled, base: 0x1000, length: 0x100)
        try bus.insert(silent, base: 0x2000, length: 0x10)
        #expect(bus.read(0x1010, size: 4) == [0x42, 0x42, 0x42, 0x42])
        #expect(filled.reads.values.map(\.offset) == [0x10])
        #expect(filled.reads.values.map(\.size) == [4])
        // A device that leaves the buffer alone reads as zeros, not open-bus ones.
        #expect(bus.read(0x2002, size: 2) == [0, 0])
        #expect(bus.read(0x1100, size: 1) == [0xff])
        #expect(bus.read(0x0, size: 8) == [UInt8](repeating: 0xff, count: 8))
    }

    @Test func writesGoToTheDeviceAndUnclaimedWritesAreDropped() throws {
        var bus = Bus()
        let device = ProbeDevice()
        try bus.insert(device, base: 0x600, length: 5)
        #expect(bus.write(0x604, data: [1, 2]))
        #expect(!bus.write(0x605, data: [3]))
        #expect(!bus.write(0x5ff, data: [4]))
        #expect(device.writes.values.map(\.offset) == [4])
        #expect(device.writes.values.map(\.data) == [[1, 2]])
    }

    @Test func lockSerializesConcurrentUpdates() throws {
        final class Counter: @unchecked Sendable { let lock = Lock(); var value = 0 }
        let counter = Counter()
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<10_000 { counter.lock.withLock { counter.value += 1 } }
        }
        #expect(counter.value == 80_000)
        struct Failure: Error {}
        #expect(throws: Failure.self) { try counter.lock.withLock { throw Failure() } }
        #expect(counter.lock.withLock { 7 } == 7)  // not left locked by the throw
    }
}
