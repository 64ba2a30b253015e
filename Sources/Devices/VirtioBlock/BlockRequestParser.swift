/// What requests are checked against: the disk's size, whether it may be written, and the
/// limits the device advertises in its configuration space (virtio 1.2 §5.2.4).
public struct BlockLimits: Equatable, Sendable {
    public static let sectorSize = 512
    /// Past this many sectors a byte offset would not fit an off_t; larger capacities are cut to it.
    public static let maximumCapacity = UInt64(Int64.max) >> 9

    /// In 512-byte sectors.
    public var capacity: UInt64
    public var readOnly: Bool
    /// seg_max and size_max: data segments per IN/OUT request, and bytes per segment.
    public var maximumSegments = VirtioBlock.maximumSegments
    public var maximumSegmentSize = VirtioBlock.maximumSegmentSize
    /// Whether the driver negotiated VIRTIO_BLK_F_DISCARD / VIRTIO_BLK_F_WRITE_ZEROES.
    public var discard: Bool
    public var writeZeroes: Bool
    public var maximumDiscardSectors = VirtioBlock.maximumDiscardSectors
    public var maximumDiscardRanges = Int(VirtioBlock.maximumDiscardRanges)
    public var maximumWriteZeroesSectors = VirtioBlock.maximumWriteZeroesSectors
    public var maximumWriteZeroesRanges = Int(VirtioBlock.maximumWriteZeroesRanges)

    public init(capacity: UInt64, readOnly: Bool, discard: Bool = false, writeZeroes: Bool = false) {
        self.capacity = min(capacity, Self.maximumCapacity)
        self.readOnly = readOnly
        self.discard = discard
        self.writeZeroes = writeZeroes
    }

    /// The most data one IN/OUT request can carry: seg_max × size_max.
    public var maximumRequestBytes: Int { maximumSegments * Int(maximumSegmentSize) }
}

/// Reads one descriptor chain as a virtio-blk request (§5.2.6) and checks all of it before any
/// I/O: pure, it touches guest memory only to read the header and range table, and no file.
///
/// The chain is read as the spec's struct, not as a descriptor layout (§2.7.4: no framing may be
/// assumed): the device-readable bytes are the 16-byte header then (OUT, DISCARD, WRITE_ZEROES)
/// the data; the device-writable bytes are (IN, GET_ID) the data then the status byte, last.
public enum BlockRequestParser {
    static let headerSize = 16
    /// `struct virtio_blk_discard_write_zeroes`.
    static let rangeSize = 16

    /// The request, accepted or refused with a status. Throws only when the chain has no
    /// device-writable byte: nothing can be answered, so the queue is broken.
    public static func parse(_ chain: DescriptorChain, limits: BlockLimits) throws(VirtioBlockError) -> BlockRequest {
        guard let last = chain.writable.last else { throw .noStatusByte(head: chain.head) }
        let statusAddress = last.address + UInt64(last.length) - 1
        var known: BlockRequestType?
        func answer(_ operation: BlockRequest.Operation) -> BlockRequest {
            BlockRequest(head: chain.head, type: known, statusAddress: statusAddress, operation: operation)
        }
        func refuse(_ problem: BlockRequestProblem) -> BlockRequest { answer(.refused(problem)) }

        guard chain.readableLength >= headerSize else { return refuse(.headerTooShort(readable: chain.readableLength)) }
        let header: [UInt8]
        do { header = try chain.readReadable(maxBytes: headerSize) } catch { throw .queue(error) }
        // struct virtio_blk_req: le32 type, le32 reserved, le64 sector.
        let rawType = UInt32(littleEndian: header, at: 0)
        let sector = UInt64(littleEndian: header, at: 8)
        guard let type = BlockRequestType(rawValue: rawType) else { return refuse(.unknownType(rawType)) }
        known = type
        let extraReadable = chain.readableLength - headerSize
        let extraWritable = chain.writableLength - 1

        switch type {
        case .read:
            guard extraReadable == 0 else { return refuse(.wrongDirection(type, extra: extraReadable)) }
            let data = slice(chain.writable, from: 0, count: extraWritable)
            if let problem = check(data, length: extraWritable, sector: sector, limits) { return refuse(problem) }
            return answer(.read(sector: sector, into: data))
        case .write:
            // §5.2.6.2: a write to a read-only device fails and writes nothing.
            if limits.readOnly { return refuse(.readOnly(type)) }
            guard extraWritable == 0 else { return refuse(.wrongDirection(type, extra: extraWritable)) }
            let data = slice(chain.readable, from: headerSize, count: extraReadable)
            if let problem = check(data, length: extraReadable, sector: sector, limits) { return refuse(problem) }
            return answer(.write(sector: sector, from: data))
        case .flush:
            guard extraReadable == 0, extraWritable == 0 else {
                return refuse(.wrongDirection(type, extra: extraReadable + extraWritable))
            }
            return answer(.flush)
        case .getID:
            guard extraReadable == 0 else { return refuse(.wrongDirection(type, extra: extraReadable)) }
            guard extraWritable > 0 else { return refuse(.noIDBuffer) }
            return answer(.getID(into: slice(chain.writable, from: 0, count: min(extraWritable, VirtioBlock.idBytes))))
        case .discard, .writeZeroes:
            if limits.readOnly { return refuse(.readOnly(type)) }
            guard type == .discard ? limits.discard : limits.writeZeroes else { return refuse(.notNegotiated(type)) }
            guard extraWritable == 0 else { return refuse(.wrongDirection(type, extra: extraWritable)) }
            switch try ranges(of: chain, type: type, length: extraReadable, limits) {
            case .success(let ranges): return answer(type == .discard ? .discard(ranges) : .writeZeroes(ranges))
            case .failure(let problem): return refuse(problem)
            }
        }
    }

    /// IN/OUT data (§5.2.6): whole sectors, at most seg_max segments of at most size_max bytes
    /// each, all of it inside the disk.
    static func check(_ data: [VirtqueueBuffer], length: Int, sector: UInt64, _ limits: BlockLimits) -> BlockRequestProblem? {
        guard length % BlockLimits.sectorSize == 0 else { return .notWholeSectors(length: length) }
        guard data.count <= limits.maximumSegments else {
            return .tooManySegments(count: data.count, maximum: limits.maximumSegments)
        }
        if let large = data.first(where: { $0.length > limits.maximumSegmentSize }) {
            return .segmentTooLarge(length: large.length, maximum: limits.maximumSegmentSize)
        }
        return checkRange(sector: sector, sectors: UInt64(length / BlockLimits.sectorSize), limits.capacity)
    }

    /// `sector + sectors` within `capacity`, the sum checked for overflow first.
    static func checkRange(sector: UInt64, sectors: UInt64, _ capacity: UInt64) -> BlockRequestProblem? {
        let (end, overflow) = sector.addingReportingOverflow(sectors)
        guard !overflow, end <= capacity else { return .beyondCapacity(sector: sector, sectors: sectors, capacity: capacity) }
        return nil
    }

    /// The range table of a DISCARD or WRITE_ZEROES (§5.2.6): whole 16-byte segments, as many as
    /// max_discard_seg / max_write_zeroes_seg, counted before a byte of it is read.
    static func ranges(of chain: DescriptorChain, type: BlockRequestType, length: Int,
                       _ limits: BlockLimits) throws(VirtioBlockError) -> Result<[BlockRange], BlockRequestProblem> {
        guard length > 0, length % rangeSize == 0 else { return .failure(.partialRangeTable(length: length)) }
        let count = length / rangeSize
        let (maximumRanges, maximumSectors) = type == .discard
            ? (limits.maximumDiscardRanges, limits.maximumDiscardSectors)
            : (limits.maximumWriteZeroesRanges, limits.maximumWriteZeroesSectors)
        guard count <= maximumRanges else { return .failure(.tooManyRanges(count: count, maximum: maximumRanges)) }
        let table: [UInt8]
        do { table = try chain.readReadable(from: headerSize, maxBytes: length) } catch { throw .queue(error) }
        // §5.2.6.2: unknown flags, and unmap on a discard, are UNSUPP; write zeroes may unmap.
        let allowedFlags: UInt32 = type == .writeZeroes ? 1 : 0
        var ranges: [BlockRange] = []
        ranges.reserveCapacity(count)
        for i in 0..<count {
            let at = i * rangeSize
            let sector = UInt64(littleEndian: table, at: at)
            let sectors = UInt32(littleEndian: table, at: at + 8)
            let flags = UInt32(littleEndian: table, at: at + 12)
            guard flags & ~allowedFlags == 0 else { return .failure(.unsupportedFlags(type, flags: flags)) }
            guard sectors <= maximumSectors else { return .failure(.rangeTooLarge(sectors: sectors, maximum: maximumSectors)) }
            if let problem = checkRange(sector: sector, sectors: UInt64(sectors), limits.capacity) { return .failure(problem) }
            ranges.append(BlockRange(sector: sector, sectors: sectors, unmap: flags & 1 != 0))
        }
        return .success(ranges)
    }

    /// `count` bytes of `buffers` from `offset` on, as the pieces of buffers that hold them.
    static func slice(_ buffers: [VirtqueueBuffer], from offset: Int, count: Int) -> [VirtqueueBuffer] {
        var skip = offset
        var wanted = count
        var pieces: [VirtqueueBuffer] = []
        for b in buffers where wanted > 0 {
            let length = Int(b.length)
            if skip >= length { skip -= length; continue }
            let take = min(length - skip, wanted)
            pieces.append(VirtqueueBuffer(address: b.address + UInt64(skip), length: UInt32(take)))
            skip = 0
            wanted -= take
        }
        return pieces
    }
}

extension FixedWidthInteger {
    /// A little-endian integer from `bytes` at `offset` (which the caller has checked is in range).
    init(littleEndian bytes: [UInt8], at offset: Int) {
        var value: Self = 0
        for i in 0..<MemoryLayout<Self>.size { value |= Self(bytes[offset + i]) << (8 * i) }
        self = value
    }
}
