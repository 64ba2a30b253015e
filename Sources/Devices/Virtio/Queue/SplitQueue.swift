import GuestMemory
import POSIX
import Synchronization

/// The device side of a split virtqueue (virtio 1.2 §2.7): pops descriptor chains the driver
/// made available and pushes used elements back.
///
/// Everything read from guest memory is hostile. Every index is range-checked, every walk is
/// bounded by the table it walks, every buffer is checked to lie in RAM before it is handed out,
/// and the first error stops the queue for good (it throws again on every later call) so a
/// device cannot carry on with a queue the guest has corrupted. `stop()` does the same from the
/// transport's side, on reset: after it the queue never touches guest memory again.
///
/// Safe to call from any thread; calls are serialised by an internal lock.
public final class SplitQueue: @unchecked Sendable {
    /// Descriptor flags (§2.7.5).
    static let descNext: UInt16 = 1
    static let descWrite: UInt16 = 2
    static let descIndirect: UInt16 = 4
    /// VIRTQ_AVAIL_F_NO_INTERRUPT (§2.7.6).
    static let availNoInterrupt: UInt16 = 1
    static let descriptorSize: UInt64 = 16
    /// The largest queue size §2.7 allows (the largest power of two below 2^16).
    public static let maximumSize = 32768
    /// Indirect tables are bounded by what a 16-bit `next` can reach.
    static let maximumIndirectEntries = 65536

    public let size: Int
    public let descriptorTable: UInt64
    public let availableRing: UInt64
    public let usedRing: UInt64
    /// VIRTIO_F_INDIRECT_DESC and VIRTIO_F_EVENT_IDX, as negotiated.
    public let indirectDescriptors: Bool
    public let eventIndex: Bool
    let memory: GuestMemory

    private let lock = Lock()
    private var nextAvail: UInt16 = 0
    private var nextUsed: UInt16 = 0
    private var stopped = false
    private var failure: VirtqueueError?

    /// Checks the driver's queue configuration (§2.7 size and alignment table; §4.2.3.2) and
    /// makes the queue. `features` is the negotiated feature set.
    public init(
        size: Int, maximumSize: Int, descriptorTable: UInt64, availableRing: UInt64, usedRing: UInt64,
        memory: GuestMemory, features: UInt64 = 0
    ) throws(VirtqueueError) {
        let limit = min(maximumSize, Self.maximumSize)
        guard size > 0, size <= limit, size & (size - 1) == 0 else {
            throw .invalidSize(size: size, maximum: limit)
        }
        let n = UInt64(size)
        let parts: [(VirtqueuePart, UInt64, UInt64, UInt64)] = [
            (.descriptorTable, descriptorTable, 16, Self.descriptorSize * n),
            (.availableRing, availableRing, 2, 6 + 2 * n),
            (.usedRing, usedRing, 4, 6 + 8 * n),
        ]
        for (part, address, alignment, length) in parts {
            guard address % alignment == 0 else { throw .misalignedRing(part, address: address, alignment: alignment) }
            guard memory.contains(address, length: length) else {
                throw .ringOutsideMemory(part, address: address, length: length)
            }
        }
        self.size = size
        self.descriptorTable = descriptorTable
        self.availableRing = availableRing
        self.usedRing = usedRing
        self.memory = memory
        indirectDescriptors = features & VirtioFeature.indirectDescriptors != 0
        eventIndex = features & VirtioFeature.eventIndex != 0
    }

    /// The next available-ring position we will read, and the next used-ring position we will
    /// write (free-running 16-bit indices, §2.7.13.3).
    public var nextAvailIndex: UInt16 { lock.withLock { nextAvail } }
    public var nextUsedIndex: UInt16 { lock.withLock { nextUsed } }

    /// One line for the VMM's state dump: our indices beside the driver's (read from guest
    /// memory, so only as true as the guest keeps them), and the suppression fields.
    public var diagnostics: String {
        lock.withLock {
            if stopped { return "stopped" }
            if let failure { return "failed: \(failure)" }
            let avail = (try? memory.load(UInt16.self, at: availIndexAddress)).map { "\($0)" } ?? "?"
            let used = (try? memory.load(UInt16.self, at: usedIndexAddress)).map { "\($0)" } ?? "?"
            var line = "size \(size), avail idx \(avail) (taken \(nextAvail)), used idx \(used) (ours \(nextUsed))"
            if eventIndex {
                let usedEvent = (try? memory.load(UInt16.self, at: usedEventAddress)).map { "\($0)" } ?? "?"
                let availEvent = (try? memory.load(UInt16.self, at: availEventAddress)).map { "\($0)" } ?? "?"
                line += ", used_event \(usedEvent), avail_event \(availEvent)"
            } else {
                let flags = (try? memory.load(UInt16.self, at: availableRing)).map { "\($0)" } ?? "?"
                line += ", avail flags \(flags)"
            }
            return line
        }
    }

    /// Stops the queue: later pops and pushes throw `.stopped` without touching guest memory.
    public func stop() { lock.withLock { stopped = true } }
    public var isStopped: Bool { lock.withLock { stopped || failure != nil } }

    /// The next available descriptor chain, or nil when the driver has offered nothing new.
    public func pop() throws(VirtqueueError) -> DescriptorChain? {
        try locked { () throws(VirtqueueError) in try popLocked() }
    }

    /// Returns one chain to the driver with `length` bytes written; true when the driver must
    /// be sent a used buffer notification.
    public func push(head: UInt16, length: UInt32) throws(VirtqueueError) -> Bool {
        try push([(head: head, length: length)])
    }

    /// Returns several chains, then publishes them with one used-index update; true when the
    /// driver must be sent a used buffer notification for the batch.
    public func push(_ used: [(head: UInt16, length: UInt32)]) throws(VirtqueueError) -> Bool {
        try locked { () throws(VirtqueueError) in try pushLocked(used) }
    }

    /// vring_need_event (§2.7.7.2): whether moving the used index from `old` to `new` passes
    /// the driver's `used_event`, all in wrapping 16-bit arithmetic.
    public static func needsEvent(event: UInt16, new: UInt16, old: UInt16) -> Bool {
        new &- event &- 1 < new &- old
    }

    // MARK: - Ring layout (§2.7.6, §2.7.8)

    private var availIndexAddress: UInt64 { availableRing + 2 }
    private func availRingAddress(_ slot: UInt16) -> UInt64 { availableRing + 4 + 2 * UInt64(Int(slot) % size) }
    private var usedEventAddress: UInt64 { availableRing + 4 + 2 * UInt64(size) }
    private var usedIndexAddress: UInt64 { usedRing + 2 }
    private func usedElementAddress(_ slot: UInt16) -> UInt64 { usedRing + 4 + 8 * UInt64(Int(slot) % size) }
    private var availEventAddress: UInt64 { usedRing + 4 + 8 * UInt64(size) }

    /// Runs `body` under the lock unless the queue is stopped or failed; a failure sticks.
    private func locked<T>(_ body: () throws(VirtqueueError) -> T) throws(VirtqueueError) -> T {
        let result: Result<T, VirtqueueError> = lock.withLock {
            if stopped { return .failure(.stopped) }
            if let failure { return .failure(failure) }
            do throws(VirtqueueError) { return .success(try body()) } catch {
                failure = error
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Ring accesses stay inside the areas checked at init, so these cannot fail; map them anyway.
    private func load16(_ address: UInt64, _ part: VirtqueuePart) throws(VirtqueueError) -> UInt16 {
        do { return try memory.load(UInt16.self, at: address) } catch {
            throw .ringOutsideMemory(part, address: address, length: 2)
        }
    }

    private func store<T: FixedWidthInteger>(_ value: T, _ address: UInt64, _ part: VirtqueuePart) throws(VirtqueueError) {
        do { try memory.store(value, at: address) } catch {
            throw .ringOutsideMemory(part, address: address, length: UInt64(MemoryLayout<T>.size))
        }
    }

    private func popLocked() throws(VirtqueueError) -> DescriptorChain? {
        if eventIndex {
            // §2.7.10: ask to be notified when the driver fills the slot we read next. The store
            // must be visible before we look at the available index, or a kick can be lost.
            try store(nextAvail, availEventAddress, .usedRing)
            atomicMemoryFence(ordering: .sequentiallyConsistent)
        }
        let availIndex = try load16(availIndexAddress, .availableRing)
        let pending = availIndex &- nextAvail
        if pending == 0 { return nil }
        // At most a queue's worth can be outstanding (§2.7.13); more means a corrupt index.
        guard Int(pending) <= size else {
            throw .availIndexTooFarAhead(availIndex: availIndex, consumed: nextAvail, size: size)
        }
        // Read the ring entry and descriptors only after the index that published them.
        atomicMemoryFence(ordering: .acquiring)
        let head = try load16(availRingAddress(nextAvail), .availableRing)
        guard Int(head) < size else { throw .headOutOfRange(head: head, size: size) }
        let chain = try walk(head: head)
        nextAvail &+= 1
        return chain
    }

    private struct Descriptor {
        let address: UInt64
        let length: UInt32
        let flags: UInt16
        let next: UInt16
    }

    private func readDescriptor(table: UInt64, index: UInt16) throws(VirtqueueError) -> Descriptor {
        let address = table + Self.descriptorSize * UInt64(index)
        let raw: [UInt8]
        do { raw = try memory.read(at: address, count: 16) } catch {
            throw .ringOutsideMemory(.descriptorTable, address: address, length: 16)
        }
        func le<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            var v: T = 0
            for i in 0..<MemoryLayout<T>.size { v |= T(raw[at + i]) << (8 * i) }
            return v
        }
        return Descriptor(address: le(0, UInt64.self), length: le(8, UInt32.self), flags: le(12, UInt16.self), next: le(14, UInt16.self))
    }

    /// Follows a chain from `head` (§2.7.5), switching at most once into an indirect table
    /// (§2.7.5.3). Each table's walk is bounded by its entry count, so a loop ends in an error.
    private func walk(head: UInt16) throws(VirtqueueError) -> DescriptorChain {
        var readable: [VirtqueueBuffer] = []
        var writable: [VirtqueueBuffer] = []
        var total: UInt64 = 0
        var table = descriptorTable
        var entries = size
        var inIndirect = false
        var index = head
        var visited = 0
        while true {
            visited += 1
            guard visited <= entries else { throw .descriptorLoop(head: head, limit: entries) }
            let d = try readDescriptor(table: table, index: index)

            if d.flags & Self.descIndirect != 0 {
                // §2.7.5.3.1: one level only, only if negotiated, never together with NEXT.
                // Its WRITE flag is ignored (§2.7.5.3.2).
                guard !inIndirect else { throw .nestedIndirect(head: head) }
                guard indirectDescriptors else { throw .indirectNotNegotiated(head: head) }
                guard d.flags & Self.descNext == 0 else { throw .indirectWithNext(head: head) }
                let count = Int(d.length) / Int(Self.descriptorSize)
                guard d.length > 0, UInt64(d.length) % Self.descriptorSize == 0, count <= Self.maximumIndirectEntries else {
                    throw .invalidIndirectTableLength(head: head, length: d.length)
                }
                guard memory.contains(d.address, length: UInt64(d.length)) else {
                    throw .indirectTableOutsideMemory(head: head, address: d.address, length: d.length)
                }
                table = d.address
                entries = count
                inIndirect = true
                index = 0
                visited = 0
                continue
            }

            guard d.length > 0 else { throw .zeroLengthDescriptor(head: head) }
            let isWritable = d.flags & Self.descWrite != 0
            // §2.7.4.2: all device-readable buffers come before all device-writable ones.
            if !isWritable && !writable.isEmpty { throw .readableAfterWritable(head: head) }
            // §2.7.5.2: a chain never reaches 2^32 bytes (used lengths are 32-bit).
            total += UInt64(d.length)
            guard total <= UInt64(UInt32.max) else { throw .chainTooLong(head: head) }
            // contains() also rejects address + length wrapping past 2^64.
            guard memory.contains(d.address, length: UInt64(d.length)) else {
                throw .bufferOutsideMemory(head: head, address: d.address, length: d.length)
            }
            let buffer = VirtqueueBuffer(address: d.address, length: d.length)
            if isWritable { writable.append(buffer) } else { readable.append(buffer) }

            guard d.flags & Self.descNext != 0 else { break }
            guard Int(d.next) < entries else { throw .nextOutOfRange(head: head, next: d.next, tableEntries: entries) }
            index = d.next
        }
        return DescriptorChain(head: head, readable: readable, writable: writable, memory: memory)
    }

    private func pushLocked(_ used: [(head: UInt16, length: UInt32)]) throws(VirtqueueError) -> Bool {
        guard !used.isEmpty else { return false }
        for element in used where Int(element.head) >= size {
            throw .usedHeadOutOfRange(head: element.head, size: size)
        }
        let old = nextUsed
        var slot = nextUsed
        for element in used {
            // virtq_used_elem: le32 id, le32 len (§2.7.8).
            try store(UInt32(element.head), usedElementAddress(slot), .usedRing)
            try store(element.length, usedElementAddress(slot) + 4, .usedRing)
            slot &+= 1
        }
        // §2.7.8.2: the elements must be visible before the index that publishes them.
        atomicMemoryFence(ordering: .releasing)
        try store(slot, usedIndexAddress, .usedRing)
        nextUsed = slot
        // The index store must be visible before we read the driver's suppression state, or the
        // driver may go to sleep having just decided we would notify it.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if eventIndex {
            // §2.7.7.2: notify when the used index passes used_event; ignore the flags.
            let usedEvent = try load16(usedEventAddress, .availableRing)
            return Self.needsEvent(event: usedEvent, new: slot, old: old)
        }
        let flags = try load16(availableRing, .availableRing)
        return flags & Self.availNoInterrupt == 0
    }
}
