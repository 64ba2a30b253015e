/// The three guest-memory areas of a split virtqueue (virtio 1.2 §2.7).
public enum VirtqueuePart: String, Sendable {
    case descriptorTable = "descriptor table"
    case availableRing = "available ring"
    case usedRing = "used ring"
}

/// Why a virtqueue cannot be used. Everything in a virtqueue is written by the guest, which is
/// hostile: each malformed index, length or address is one of these, never a trap or a hang.
/// Any of them means the device needs a reset (the transport sets DEVICE_NEEDS_RESET).
public enum VirtqueueError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The queue size is 0, above the device's maximum, or not a power of two (§2.7).
    case invalidSize(size: Int, maximum: Int)
    /// A ring's guest-physical address lacks the alignment §2.7 requires (16, 2, 4).
    case misalignedRing(VirtqueuePart, address: UInt64, alignment: UInt64)
    /// A ring does not lie inside guest RAM (or its address plus length overflows).
    case ringOutsideMemory(VirtqueuePart, address: UInt64, length: UInt64)
    /// The driver's available index is more than a queue's worth ahead of what we consumed.
    case availIndexTooFarAhead(availIndex: UInt16, consumed: UInt16, size: Int)
    /// An available-ring entry names a descriptor past the end of the table.
    case headOutOfRange(head: UInt16, size: Int)
    /// A descriptor's `next` is past the end of its table (the queue's, or an indirect one).
    case nextOutOfRange(head: UInt16, next: UInt16, tableEntries: Int)
    /// Following `next` visited more descriptors than the table holds: the chain loops.
    case descriptorLoop(head: UInt16, limit: Int)
    /// A buffer's address plus length is not inside guest RAM, or wraps the address space.
    case bufferOutsideMemory(head: UInt16, address: UInt64, length: UInt32)
    /// A device-readable descriptor follows a device-writable one (§2.7.4.2).
    case readableAfterWritable(head: UInt16)
    /// The chain's buffers add up to more than 4 GiB - 1 (§2.7.5.2 forbids 2^32 bytes or more).
    case chainTooLong(head: UInt16)
    /// A descriptor with length 0.
    case zeroLengthDescriptor(head: UInt16)
    /// VIRTQ_DESC_F_INDIRECT used without VIRTIO_F_INDIRECT_DESC negotiated (§2.7.5.3.1).
    case indirectNotNegotiated(head: UInt16)
    /// VIRTQ_DESC_F_INDIRECT inside an indirect table (§2.7.5.3.1).
    case nestedIndirect(head: UInt16)
    /// An indirect table whose length is 0, not a multiple of 16, or over 65536 entries.
    case invalidIndirectTableLength(head: UInt16, length: UInt32)
    /// VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT both set (§2.7.5.3.1).
    case indirectWithNext(head: UInt16)
    /// An indirect table not inside guest RAM.
    case indirectTableOutsideMemory(head: UInt16, address: UInt64, length: UInt32)
    /// The device wanted only device-readable buffers and the chain has a writable one.
    case unexpectedWritableBuffer(head: UInt16)
    /// The device wanted only device-writable buffers and the chain has a readable one.
    case unexpectedReadableBuffer(head: UInt16)
    /// The device tried to return a chain head that cannot exist in this queue.
    case usedHeadOutOfRange(head: UInt16, size: Int)
    /// The queue was stopped (device reset, or it needs one); it touches guest memory no more.
    case stopped

    public var description: String {
        switch self {
        case .invalidSize(let s, let max):
            "virtqueue size \(s) is not a power of two between 1 and \(max)"
        case .misalignedRing(let part, let a, let align):
            "virtqueue \(part.rawValue) at \(hex(a)) is not \(align)-byte aligned"
        case .ringOutsideMemory(let part, let a, let l):
            "virtqueue \(part.rawValue) at \(hex(a)) (\(l) bytes) is outside guest RAM"
        case .availIndexTooFarAhead(let idx, let consumed, let s):
            "available index \(idx) is more than \(s) entries ahead of the \(consumed) consumed"
        case .headOutOfRange(let h, let s):
            "available ring names descriptor \(h) in a queue of \(s)"
        case .nextOutOfRange(let h, let n, let entries):
            "descriptor chain \(h): next \(n) is past a table of \(entries) entries"
        case .descriptorLoop(let h, let limit):
            "descriptor chain \(h) is longer than its table (\(limit) entries): it loops"
        case .bufferOutsideMemory(let h, let a, let l):
            "descriptor chain \(h): buffer at \(hex(a)) (\(l) bytes) is outside guest RAM"
        case .readableAfterWritable(let h):
            "descriptor chain \(h): a device-readable buffer follows a device-writable one"
        case .chainTooLong(let h):
            "descriptor chain \(h) totals 4 GiB or more"
        case .zeroLengthDescriptor(let h):
            "descriptor chain \(h) has a zero-length descriptor"
        case .indirectNotNegotiated(let h):
            "descriptor chain \(h) uses an indirect table but VIRTIO_F_INDIRECT_DESC was not negotiated"
        case .nestedIndirect(let h):
            "descriptor chain \(h): indirect descriptor inside an indirect table"
        case .invalidIndirectTableLength(let h, let l):
            "descriptor chain \(h): indirect table length \(l) is not a positive multiple of 16 (at most 65536 entries)"
        case .indirectWithNext(let h):
            "descriptor chain \(h): indirect descriptor also has NEXT set"
        case .indirectTableOutsideMemory(let h, let a, let l):
            "descriptor chain \(h): indirect table at \(hex(a)) (\(l) bytes) is outside guest RAM"
        case .unexpectedWritableBuffer(let h):
            "descriptor chain \(h) has a device-writable buffer where only readable ones are allowed"
        case .unexpectedReadableBuffer(let h):
            "descriptor chain \(h) has a device-readable buffer where only writable ones are allowed"
        case .usedHeadOutOfRange(let h, let s):
            "device returned descriptor \(h) to a queue of \(s)"
        case .stopped:
            "virtqueue is stopped until the driver resets the device"
        }
    }
}

private func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
