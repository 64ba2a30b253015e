/// virtio-blk feature bits (virtio 1.2 §5.2.3).
public enum VirtioBlockFeature {
    public static let sizeMax: UInt64 = 1 << 1
    public static let segMax: UInt64 = 1 << 2
    public static let readOnly: UInt64 = 1 << 5
    public static let blockSize: UInt64 = 1 << 6
    public static let flush: UInt64 = 1 << 9
    public static let discard: UInt64 = 1 << 13
    public static let writeZeroes: UInt64 = 1 << 14
}

/// Request types (§5.2.6); any other value is answered VIRTIO_BLK_S_UNSUPP.
public enum BlockRequestType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case read = 0  // VIRTIO_BLK_T_IN
    case write = 1  // VIRTIO_BLK_T_OUT
    case flush = 4
    case getID = 8
    case discard = 11
    case writeZeroes = 13

    public var description: String {
        switch self {
        case .read: "IN"
        case .write: "OUT"
        case .flush: "FLUSH"
        case .getID: "GET_ID"
        case .discard: "DISCARD"
        case .writeZeroes: "WRITE_ZEROES"
        }
    }
}

/// The status byte the device writes last (§5.2.6).
public enum BlockStatus: UInt8, Sendable {
    case ok = 0
    case ioError = 1
    case unsupported = 2
}

/// One `struct virtio_blk_discard_write_zeroes` (§5.2.6): a sector range, and for write
/// zeroes whether the device may deallocate it.
public struct BlockRange: Equatable, Sendable {
    public let sector: UInt64
    public let sectors: UInt32
    public let unmap: Bool

    public init(sector: UInt64, sectors: UInt32, unmap: Bool = false) {
        self.sector = sector
        self.sectors = sectors
        self.unmap = unmap
    }
}

/// Why a request is answered with a status and no I/O. Each reads as a message.
public enum BlockRequestProblem: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer than 16 device-readable bytes before the writable part: the header is short or writable.
    case headerTooShort(readable: Int)
    /// Data in the wrong direction for the type: `extra` bytes readable (IN) or writable (the rest).
    case wrongDirection(BlockRequestType, extra: Int)
    /// IN/OUT data not a whole number of 512-byte sectors.
    case notWholeSectors(length: Int)
    case tooManySegments(count: Int, maximum: Int)
    case segmentTooLarge(length: UInt32, maximum: UInt32)
    /// `sector + sectors` overflows or passes the capacity.
    case beyondCapacity(sector: UInt64, sectors: UInt64, capacity: UInt64)
    /// A write, discard or write zeroes on a read-only disk (§5.2.6.2).
    case readOnly(BlockRequestType)
    /// DISCARD or WRITE_ZEROES when the driver did not negotiate it.
    case notNegotiated(BlockRequestType)
    /// Discard / write-zeroes payload empty or not whole 16-byte segments.
    case partialRangeTable(length: Int)
    case tooManyRanges(count: Int, maximum: Int)
    case rangeTooLarge(sectors: UInt32, maximum: UInt32)
    /// Flag bits this type does not allow (§5.2.6.2: UNSUPP).
    case unsupportedFlags(BlockRequestType, flags: UInt32)
    /// GET_ID with no byte to put the ID in.
    case noIDBuffer
    case unknownType(UInt32)

    /// The status it is answered with.
    public var status: BlockStatus {
        switch self {
        case .unknownType, .notNegotiated, .unsupportedFlags: .unsupported
        default: .ioError
        }
    }

    public var description: String {
        switch self {
        case .headerTooShort(let n): "header: \(n) device-readable bytes, 16 needed"
        case .wrongDirection(let t, let n): "\(t): \(n) bytes of data in the wrong direction"
        case .notWholeSectors(let n): "data of \(n) bytes is not whole 512-byte sectors"
        case .tooManySegments(let n, let max): "\(n) data segments, at most \(max)"
        case .segmentTooLarge(let n, let max): "a data segment of \(n) bytes, at most \(max)"
        case .beyondCapacity(let s, let n, let c): "sectors \(s) + \(n) pass the capacity of \(c)"
        case .readOnly(let t): "\(t) on a read-only disk"
        case .notNegotiated(let t): "\(t) was not negotiated"
        case .partialRangeTable(let n): "a range table of \(n) bytes is not whole 16-byte segments"
        case .tooManyRanges(let n, let max): "\(n) ranges, at most \(max)"
        case .rangeTooLarge(let n, let max): "a range of \(n) sectors, at most \(max)"
        case .unsupportedFlags(let t, let f): "\(t) with flags 0x\(String(f, radix: 16))"
        case .noIDBuffer: "GET_ID without a buffer for the ID"
        case .unknownType(let t): "unknown request type \(t)"
        }
    }
}

/// A request the parser accepted or refused, with where its status byte goes.
public struct BlockRequest: Equatable, Sendable {
    public enum Operation: Equatable, Sendable {
        /// IN: `sector` onwards into the guest's buffers, in order.
        case read(sector: UInt64, into: [VirtqueueBuffer])
        /// OUT: the guest's buffers, in order, to `sector` onwards.
        case write(sector: UInt64, from: [VirtqueueBuffer])
        case flush
        /// GET_ID: the serial, at most 20 bytes of it, into these buffers.
        case getID(into: [VirtqueueBuffer])
        case discard([BlockRange])
        case writeZeroes([BlockRange])
        /// Answered with the problem's status and no I/O.
        case refused(BlockRequestProblem)
    }

    /// The chain's head, for the used ring.
    public let head: UInt16
    /// The header's type; nil when the header is short or names no type this device knows.
    public let type: BlockRequestType?
    /// Guest-physical address of the status byte: the chain's last device-writable byte.
    public let statusAddress: UInt64
    public let operation: Operation

    public init(head: UInt16, type: BlockRequestType?, statusAddress: UInt64, operation: Operation) {
        self.head = head
        self.type = type
        self.statusAddress = statusAddress
        self.operation = operation
    }

    /// Bytes moved between guest memory and the disk (what the byte bucket charges).
    public var dataBytes: UInt64 {
        switch operation {
        case .read(_, let buffers), .write(_, let buffers): buffers.reduce(0) { $0 + UInt64($1.length) }
        default: 0
        }
    }
}

/// Why virtio-blk stopped: the queue is broken, not just one request.
public enum VirtioBlockError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A chain with no device-writable byte: there is nowhere to put its status (§5.2.6).
    case noStatusByte(head: UInt16)
    case queue(VirtqueueError)
    /// A serial longer than the 20 bytes GET_ID returns.
    case serialTooLong(Int)

    public var description: String {
        switch self {
        case .noStatusByte(let h): "virtio-blk: descriptor chain \(h) has no device-writable byte for its status"
        case .queue(let e): "virtio-blk: \(e)"
        case .serialTooLong(let n): "virtio-blk: a serial of \(n) bytes (at most \(VirtioBlock.idBytes))"
        }
    }
}
