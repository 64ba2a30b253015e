import Devices
import GuestMemory

/// Descriptor and ring flags from virtio 1.2 §2.7, written out here rather than taken from the
/// device code so that the tests check the spec's values.
enum Flag {
    static let next: UInt16 = 1
    static let write: UInt16 = 2
    static let indirect: UInt16 = 4
    static let noInterrupt: UInt16 = 1
}

/// One buffer a fake driver offers: `length` bytes at `address`, device-readable or -writable.
struct Buffer {
    var address: UInt64
    var length: UInt32
    var writable = false

    static func readable(_ address: UInt64, _ length: UInt32) -> Buffer { Buffer(address: address, length: length) }
    static func writable(_ address: UInt64, _ length: UInt32) -> Buffer {
        Buffer(address: address, length: length, writable: true)
    }
}

/// The guest side of a split virtqueue, for tests (after rust-vmm's MockSplitQueue): lays out a
/// descriptor table, available ring and used ring in guest memory, adds chains the way a driver
/// does (§2.7.13), and reads back what the device put in the used ring. It also writes raw,
/// malformed descriptors and indices, as a hostile guest would.
final class FakeDriver {
    let memory: GuestMemory
    let size: UInt16
    let descriptorTable: UInt64
    let availableRing: UInt64
    let usedRing: UInt64
    private(set) var availIndex: UInt16 = 0
    private var nextFree: UInt16 = 0

    /// Rings packed from `base`: table, then available ring, then the used ring 4-byte aligned.
    init(memory: GuestMemory, size: UInt16, base: UInt64 = 0x1000) {
        self.memory = memory
        self.size = size
        descriptorTable = base
        availableRing = base + 16 * UInt64(size)
        usedRing = (availableRing + 6 + 2 * UInt64(size) + 3) & ~3
    }

    /// Rings exactly where given, aligned or not, in RAM or not.
    init(memory: GuestMemory, size: UInt16, descriptorTable: UInt64, availableRing: UInt64, usedRing: UInt64) {
        self.memory = memory
        self.size = size
        self.descriptorTable = descriptorTable
        self.availableRing = availableRing
        self.usedRing = usedRing
    }

    func makeQueue(features: UInt64 = 0, maximumSize: Int = 256) throws -> SplitQueue {
        try SplitQueue(
            size: Int(size), maximumSize: maximumSize, descriptorTable: descriptorTable,
            availableRing: availableRing, usedRing: usedRing, memory: memory, features: features)
    }

    // MARK: Raw writes (a hostile guest can write anything)

    func writeDescriptor(_ index: UInt16, _ address: UInt64, _ length: UInt32, flags: UInt16 = 0, next: UInt16 = 0,
                         table: UInt64? = nil) {
        let at = (table ?? descriptorTable) + 16 * UInt64(index)
        try! memory.store(address, at: at)
        try! memory.store(length, at: at + 8)
        try! memory.store(flags, at: at + 12)
        try! memory.store(next, at: at + 14)
    }

    /// Puts `head` in the next available slot and publishes it by bumping the index.
    func publish(_ head: UInt16) {
        try! memory.store(head, at: availableRing + 4 + 2 * UInt64(availIndex % size))
        setAvailIndex(availIndex &+ 1)
    }

    func setAvailIndex(_ value: UInt16) {
        availIndex = value
        try! memory.store(value, at: availableRing + 2)
    }

    var availFlags: UInt16 {
        get { try! memory.load(at: availableRing) }
        set { try! memory.store(newValue, at: availableRing) }
    }

    /// `used_event`, after the available ring's entries (§2.7.6).
    var usedEvent: UInt16 {
        get { try! memory.load(at: availableRing + 4 + 2 * UInt64(size)) }
        set { try! memory.store(newValue, at: availableRing + 4 + 2 * UInt64(size)) }
    }

    // MARK: Well-formed chains

    /// Writes `buffers` as a chain of free descriptors and publishes it; returns the head.
    @discardableResult
    func addChain(_ buffers: [Buffer]) -> UInt16 {
        let head = nextFree
        for (i, b) in buffers.enumerated() {
            let index = nextFree
            nextFree = (nextFree + 1) % size
            let last = i == buffers.count - 1
            writeDescriptor(index, b.address, b.length, flags: (b.writable ? Flag.write : 0) | (last ? 0 : Flag.next),
                            next: last ? 0 : nextFree)
        }
        publish(head)
        return head
    }

    /// Writes `buffers` as an indirect table at `table` and publishes one descriptor pointing at
    /// it, after `direct` ordinary descriptors if given (§2.7.5.3.2 allows that); returns the head.
    @discardableResult
    func addIndirectChain(_ buffers: [Buffer], table: UInt64, direct: [Buffer] = []) -> UInt16 {
        for (i, b) in buffers.enumerated() {
            let last = i == buffers.count - 1
            writeDescriptor(UInt16(i), b.address, b.length, flags: (b.writable ? Flag.write : 0) | (last ? 0 : Flag.next),
                            next: last ? 0 : UInt16(i + 1), table: table)
        }
        let head = nextFree
        for b in direct {
            let index = nextFree
            nextFree = (nextFree + 1) % size
            writeDescriptor(index, b.address, b.length, flags: (b.writable ? Flag.write : 0) | Flag.next, next: nextFree)
        }
        let index = nextFree
        nextFree = (nextFree + 1) % size
        writeDescriptor(index, table, UInt32(16 * buffers.count), flags: Flag.indirect)
        publish(head)
        return head
    }

    // MARK: Used ring (§2.7.8)

    var usedIndex: UInt16 { try! memory.load(at: usedRing + 2) }

    func usedElement(_ slot: UInt16) -> (id: UInt32, length: UInt32) {
        let at = usedRing + 4 + 8 * UInt64(slot % size)
        return (try! memory.load(at: at), try! memory.load(at: at + 4))
    }

    /// `avail_event`, after the used ring's entries (§2.7.8).
    var availEvent: UInt16 { try! memory.load(at: usedRing + 4 + 8 * UInt64(size)) }
}

/// Guest RAM for queue tests: 1 MiB from address 0.
func testMemory(size: UInt64 = 0x10_0000) throws -> GuestMemory {
    try GuestMemory(layout: [(guestAddress: 0, size: size)])
}

/// The error `body` throws as a `VirtqueueError`, or nil.
func virtqueueError<T>(_ body: () throws -> T) -> VirtqueueError? {
    do { _ = try body(); return nil } catch { return error as? VirtqueueError }
}
