import Devices
import GuestMemory

/// A virtio-blk driver that wrote anything at all (virtio 1.2 §5.2.6): a split virtqueue over
/// 64 KiB of guest memory the input fills, each chain it yields read by `BlockRequestParser`
/// against a disk whose size and negotiated features the input picks, and again as a read-only
/// disk. An accepted request must be exactly what its chain holds and lie inside the disk; a
/// read-only disk never yields a write, discard or write zeroes; only a chain with no writable
/// byte may stop the queue.
///
/// Input: byte 0 the queue size (2^(n % 9)), byte 1 flags (indirect, event idx, read-only,
/// discard, write zeroes), bytes 2-9 the capacity in sectors (le64), then guest memory from 0:
/// the descriptor table at 0, the available ring at 0x1000, the used ring at 0x2000.
enum VirtioBlockTarget {
    static let memorySize = 64 << 10
    static let headerBytes = 10
    static let availableRing: UInt64 = 0x1000
    static let usedRing: UInt64 = 0x2000

    static func run(_ input: [UInt8]) { _ = requests(input) }

    /// The walk: every answer the parser gave (as the input's disk), each checked on the way.
    static func requests(_ input: [UInt8]) -> [BlockRequest] {
        var answers: [BlockRequest] = []
        guard input.count >= headerBytes else { return answers }
        let memory: GuestMemory
        do { memory = try GuestMemory(layout: [(guestAddress: 0, size: UInt64(memorySize))]) } catch {
            violated("64 KiB of guest memory: \(error)")
        }
        let fill = Array(input.dropFirst(headerBytes).prefix(memorySize))
        do { try memory.write(fill, at: 0) } catch { violated("writing \(fill.count) bytes at 0: \(error)") }
        let size = 1 << Int(input[0] % 9)
        let flags = input[1]
        let features = (flags & 1 != 0 ? VirtioFeature.indirectDescriptors : 0) | (flags & 2 != 0 ? VirtioFeature.eventIndex : 0)
        var capacity: UInt64 = 0
        for i in 0..<8 { capacity |= UInt64(input[2 + i]) << (8 * UInt64(i)) }
        let limits = BlockLimits(capacity: capacity, readOnly: flags & 4 != 0, discard: flags & 8 != 0, writeZeroes: flags & 16 != 0)
        let readOnly = BlockLimits(capacity: capacity, readOnly: true, discard: limits.discard, writeZeroes: limits.writeZeroes)
        let queue: SplitQueue
        do {
            queue = try SplitQueue(size: size, maximumSize: 256, descriptorTable: 0, availableRing: availableRing, usedRing: usedRing,
                                   memory: memory, features: features)
        } catch {
            violated("a valid queue configuration was refused: \(error)")
        }
        for _ in 0..<(2 * size + 2) {
            let chain: DescriptorChain
            do {
                guard let next = try queue.pop() else { return answers }
                chain = next
            } catch {
                return answers  // the device stops on a broken queue
            }
            let request: BlockRequest
            do { request = try BlockRequestParser.parse(chain, limits: limits) } catch {
                guard error == .noStatusByte(head: chain.head), chain.writable.isEmpty else {
                    violated("a chain with \(chain.writableLength) writable bytes stopped the queue: \(error)")
                }
                return answers
            }
            check(request, chain, limits)
            answers.append(request)
            guard let again = try? BlockRequestParser.parse(chain, limits: readOnly) else { violated("the read-only parse threw") }
            check(again, chain, readOnly)
            switch again.operation {
            case .write, .discard, .writeZeroes: violated("a read-only disk accepted \(again.operation)")
            default: break
            }
            do { _ = try queue.push(head: chain.head, length: 1) } catch { return answers }
        }
        return answers
    }

    /// What an answer must be, given the chain it came from.
    static func check(_ request: BlockRequest, _ chain: DescriptorChain, _ limits: BlockLimits) {
        guard !chain.writable.isEmpty else { violated("a chain with no writable byte was answered") }
        guard let last = chain.writable.last, request.statusAddress == last.address + UInt64(last.length) - 1 else {
            violated("the status byte is not the chain's last writable byte")
        }
        guard request.head == chain.head else { violated("the answer names head \(request.head), not \(chain.head)") }
        guard request.dataBytes <= UInt64(limits.maximumRequestBytes) else { violated("\(request.dataBytes) bytes in one request") }
        switch request.operation {
        case .read(let sector, let buffers):
            checkData(buffers, within: chain.writable, total: chain.writableLength - 1, sector: sector, limits)
            guard chain.readableLength == 16 else { violated("an IN with \(chain.readableLength) readable bytes") }
        case .write(let sector, let buffers):
            guard !limits.readOnly else { violated("a write on a read-only disk") }
            checkData(buffers, within: chain.readable, total: chain.readableLength - 16, sector: sector, limits)
            guard chain.writableLength == 1 else { violated("an OUT with \(chain.writableLength) writable bytes") }
        case .flush:
            guard chain.readableLength == 16, chain.writableLength == 1 else { violated("a FLUSH carrying data") }
        case .getID(let buffers):
            let total = buffers.reduce(0) { $0 + Int($1.length) }
            guard total == min(20, chain.writableLength - 1), total > 0 else { violated("GET_ID into \(total) bytes") }
            checkInside(buffers, chain.writable)
        case .discard(let ranges), .writeZeroes(let ranges):
            let isDiscard = request.type == .discard
            guard !limits.readOnly, isDiscard ? limits.discard : limits.writeZeroes else { violated("\(request.operation) not allowed") }
            guard !ranges.isEmpty, chain.readableLength == 16 + 16 * ranges.count, chain.writableLength == 1 else {
                violated("\(ranges.count) ranges from \(chain.readableLength) readable bytes")
            }
            let maximum = isDiscard ? limits.maximumDiscardRanges : limits.maximumWriteZeroesRanges
            let maximumSectors = isDiscard ? limits.maximumDiscardSectors : limits.maximumWriteZeroesSectors
            guard ranges.count <= maximum else { violated("\(ranges.count) ranges") }
            for r in ranges {
                guard r.sectors <= maximumSectors, inside(r.sector, UInt64(r.sectors), limits.capacity) else {
                    violated("range \(r.sector)+\(r.sectors) past \(limits.capacity)")
                }
                guard !(isDiscard && r.unmap) else { violated("a discard with unmap") }
            }
        case .refused(let problem):
            if case .readOnly(let type) = problem {
                guard limits.readOnly, [.write, .discard, .writeZeroes].contains(type) else { violated("refused as read-only: \(type)") }
            }
            if case .unknownType = problem, request.type != nil { violated("a known type refused as unknown") }
        }
    }

    static func checkData(_ buffers: [VirtqueueBuffer], within area: [VirtqueueBuffer], total: Int, sector: UInt64, _ limits: BlockLimits) {
        let length = buffers.reduce(0) { $0 + Int($1.length) }
        guard length == total else { violated("data segments of \(length) bytes where the chain holds \(total)") }
        guard length % 512 == 0 else { violated("\(length) bytes is not whole sectors") }
        guard buffers.count <= limits.maximumSegments, buffers.allSatisfy({ $0.length > 0 && $0.length <= limits.maximumSegmentSize }) else {
            violated("\(buffers.count) segments, largest \(buffers.map(\.length).max() ?? 0)")
        }
        guard inside(sector, UInt64(length / 512), limits.capacity) else { violated("sectors \(sector)+\(length / 512) past \(limits.capacity)") }
        checkInside(buffers, area)
    }

    /// Every piece lies within one of the chain's buffers (so within what the queue checked).
    static func checkInside(_ pieces: [VirtqueueBuffer], _ area: [VirtqueueBuffer]) {
        for p in pieces where !area.contains(where: { p.address >= $0.address && p.address + UInt64(p.length) <= $0.address + UInt64($0.length) }) {
            violated("a segment at \(p.address) (\(p.length) bytes) outside the chain's buffers")
        }
    }

    static func inside(_ sector: UInt64, _ sectors: UInt64, _ capacity: UInt64) -> Bool {
        let (end, overflow) = sector.addingReportingOverflow(sectors)
        return !overflow && end <= capacity
    }
}
