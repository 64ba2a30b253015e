import Glibc
import GuestMemory
import POSIX

/// virtio-blk (virtio 1.2 §5.2, "Block Device"): one request queue over a disk the VMM opened.
///
/// Every chain goes through `BlockRequestParser` before any I/O; a malformed request gets
/// VIRTIO_BLK_S_IOERR (or UNSUPP) and the queue goes on, while a chain with no status byte, or
/// any `VirtqueueError`, stops the device with DEVICE_NEEDS_RESET. A read-only disk answers
/// writes, discards and write-zeroes with IOERR and never touches its file.
///
/// Threads: the I/O runs where queue notifications arrive, the VMM's device thread (ioeventfd
/// → event loop; activation and reset are handed there too). A vCPU thread never blocks on the
/// disk or needs file syscalls in its filter, and one thread serialises the queue. The cost is
/// that a slow disk delays the other devices on that loop; requests are served a round at a
/// time to bound that. Config reads come from vCPU threads and read immutable bytes.
public final class VirtioBlock: VirtioDevice, @unchecked Sendable {
    public static let queueSize: UInt16 = 256
    /// seg_max: data segments per request; with the header and status it fits a queue of 256
    /// without indirect descriptors.
    public static let maximumSegments = 128
    /// size_max: bytes per data segment. With seg_max it bounds a request at 16 MiB.
    public static let maximumSegmentSize: UInt32 = 128 << 10
    /// max_discard_sectors (4 GiB) and max_discard_seg: punching a hole is cheap.
    public static let maximumDiscardSectors: UInt32 = 1 << 23
    public static let maximumDiscardRanges: UInt32 = 16
    /// max_write_zeroes_sectors (16 MiB) and max_write_zeroes_seg: small, since a file system
    /// that cannot zero a range costs a write of every zero.
    public static let maximumWriteZeroesSectors: UInt32 = 1 << 15
    public static let maximumWriteZeroesRanges: UInt32 = 1
    /// discard_sector_alignment: 4 KiB, the file systems' block.
    public static let discardSectorAlignment: UInt32 = 8
    /// VIRTIO_BLK_ID_BYTES (§5.2.6).
    public static let idBytes = 20
    /// Requests served before the loop gets its turn back (the rest follow as scheduled work).
    static let requestsPerRound = 32

    public let deviceType = VirtioDeviceType.block
    public let offeredFeatures: UInt64
    public let queueMaxSizes: [UInt16] = [queueSize]
    /// In 512-byte sectors.
    public let capacity: UInt64
    public let readOnly: Bool
    /// The GET_ID answer: the serial, zero padded to 20 bytes.
    public let identifier: [UInt8]

    private let storage: any BlockStorage
    private let events: any EventRegistry
    private let clock: @Sendable () -> UInt64
    private let config: [UInt8]

    private let lock = Lock()
    private var activation: VirtioActivation?
    private var limits: BlockLimits
    /// Fsync after every write: the driver did not negotiate FLUSH, so a completed write must be stable (§5.2.6.2).
    private var writeThrough = false
    private var limiter: RateLimiter
    /// A request popped while the limiter said wait; served first when the timer fires.
    private var held: BlockRequest?
    private var timerArmed = false
    /// Bumped by activate and reset: a timer or continuation from an older activation does nothing.
    private var epoch: UInt64 = 0
    private var statistics = Statistics()

    /// Counters for the state dump and tests.
    public struct Statistics: Equatable, Sendable {
        /// Requests answered, by type, refused ones included; `other` counts those whose header
        /// was short or named an unknown type.
        public var requests: [BlockRequestType: Int] = [:]
        public var other = 0
        public var bytesRead: UInt64 = 0
        public var bytesWritten: UInt64 = 0
        public var ioErrors = 0
        public var unsupported = 0
    }

    /// A disk over `storage`, read-only when asked or when the descriptor is. `serial` is at most
    /// 20 bytes. Limits: bytes/s and ops/s, each with its burst; `clock` (monotonic nanoseconds)
    /// and `events`' timers pace a limited device.
    public init(storage: any BlockStorage, readOnly: Bool, serial: [UInt8] = [], bytesPerSecond: RateLimiter.Limit? = nil,
                operationsPerSecond: RateLimiter.Limit? = nil, events: any EventRegistry,
                clock: @escaping @Sendable () -> UInt64 = { MonotonicClock.nanoseconds() }) throws(VirtioBlockError) {
        guard serial.count <= Self.idBytes else { throw .serialTooLong(serial.count) }
        self.storage = storage
        self.events = events
        self.clock = clock
        self.readOnly = readOnly || !storage.isWritable
        capacity = min(storage.size / UInt64(BlockLimits.sectorSize), BlockLimits.maximumCapacity)
        identifier = serial + [UInt8](repeating: 0, count: Self.idBytes - serial.count)
        var features = VirtioBlockFeature.flush | VirtioBlockFeature.segMax | VirtioBlockFeature.sizeMax
            | VirtioBlockFeature.blockSize | VirtioFeature.eventIndex | VirtioFeature.indirectDescriptors
        features |= self.readOnly ? VirtioBlockFeature.readOnly : VirtioBlockFeature.discard | VirtioBlockFeature.writeZeroes
        offeredFeatures = features
        config = Self.configurationSpace(capacity: capacity, writable: !self.readOnly)
        limits = BlockLimits(capacity: capacity, readOnly: self.readOnly)
        limiter = RateLimiter(bytes: bytesPerSecond, operations: operationsPerSecond, now: clock())
    }

    public var stats: Statistics { lock.withLock { statistics } }

    /// Lines for the VMM's state dump.
    public var diagnostics: [String] {
        lock.withLock {
            let s = statistics
            let counts = BlockRequestType.allCases.map { "\($0) \(s.requests[$0, default: 0])" }.joined(separator: ", ")
            return [
                "\(readOnly ? "read-only" : "read-write"), capacity \(capacity) sectors, active \(activation != nil)"
                    + (activation == nil ? "" : ", \(writeThrough ? "write-through" : "write-back (FLUSH negotiated)")"),
                "requests: \(counts), other \(s.other); bytes read \(s.bytesRead), written \(s.bytesWritten); "
                    + "errors: \(s.ioErrors) IOERR, \(s.unsupported) UNSUPP",
                "rate limit: \(limiter.summary); holding a request \(held != nil), timer armed \(timerArmed)",
            ]
        }
    }

    // MARK: - Configuration space (§5.2.4)

    /// `struct virtio_blk_config` up to write_zeroes_may_unmap; geometry, topology, writeback and
    /// num_queues stay zero (their features are not offered).
    static func configurationSpace(capacity: UInt64, writable: Bool) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 60)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            for i in 0..<MemoryLayout<T>.size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
        }
        put(capacity, at: 0)
        put(maximumSegmentSize, at: 8)  // size_max
        put(UInt32(maximumSegments), at: 12)  // seg_max
        put(UInt32(BlockLimits.sectorSize), at: 20)  // blk_size
        if writable {
            put(maximumDiscardSectors, at: 36)
            put(maximumDiscardRanges, at: 40)
            put(discardSectorAlignment, at: 44)
            put(maximumWriteZeroesSectors, at: 48)
            put(maximumWriteZeroesRanges, at: 52)
            bytes[56] = 1  // write_zeroes_may_unmap: an unmap request punches a hole
        }
        return bytes
    }

    public func readConfig(offset: Int, into data: inout [UInt8]) {
        for i in data.indices where offset + i >= 0 && offset + i < config.count { data[i] = config[offset + i] }
    }

    /// Nothing is writable: writeback needs VIRTIO_BLK_F_CONFIG_WCE, which is not offered.
    public func writeConfig(offset: Int, data: [UInt8]) {}

    // MARK: - Lifecycle

    public func activate(_ activation: VirtioActivation) throws {
        try lock.withLock {
            self.activation = activation
            epoch &+= 1
            held = nil
            timerArmed = false
            writeThrough = activation.features & VirtioBlockFeature.flush == 0
            limits.discard = activation.features & VirtioBlockFeature.discard != 0
            limits.writeZeroes = activation.features & VirtioBlockFeature.writeZeroes != 0
            try guarded { () throws in try serve() }
        }
    }

    public func reset() {
        lock.withLock {
            activation = nil
            epoch &+= 1
            held = nil
            timerArmed = false
        }
    }

    public func queueNotified(_ index: Int) throws {
        try lock.withLock {
            guard index == 0, activation != nil else { return }
            try guarded { () throws in try serve() }
        }
    }

    /// Runs `body`; an error stops the device (the caller reports it to the transport).
    private func guarded(_ body: () throws -> Void) throws {
        do { try body() } catch {
            activation = nil
            held = nil
            throw error
        }
    }

    /// Serving resumed from the event loop (a timer, or the next round); errors go to the notifier.
    private func resume(_ epoch: UInt64, fromTimer: Bool) {
        lock.withLock {
            guard epoch == self.epoch, let notifier = activation?.notifier else { return }
            if fromTimer { timerArmed = false }
            do { try guarded { () throws in try serve() } } catch { notifier.fail(error) }
        }
    }

    // MARK: - Requests (§5.2.6)

    /// Serves up to a round of requests: the held one first, then the queue. Stops when the
    /// limiter says wait (holding the request, with a timer armed) or the queue is empty; after a
    /// full round the rest is scheduled, so a busy queue neither starves the loop nor spins it.
    private func serve() throws {
        guard let activation, let queue = activation.queues.first ?? nil else { return }
        var notify = false
        defer { if notify { activation.notifier.usedBuffers() } }
        for _ in 0..<Self.requestsPerRound {
            let request: BlockRequest
            if let waiting = held {
                request = waiting
                held = nil
            } else {
                let chain: DescriptorChain?
                do { chain = try queue.pop() } catch { throw VirtioBlockError.queue(error) }
                guard let chain else { return }
                request = try BlockRequestParser.parse(chain, limits: limits)
            }
            if limiter.isLimited, !limiter.take(bytes: request.dataBytes, now: clock()) {
                held = request
                armTimer(afterNanoseconds: limiter.nanosecondsUntil(bytes: request.dataBytes))
                return
            }
            let (status, used) = perform(request, memory: activation.memory)
            do {
                try activation.memory.store(status.rawValue, at: request.statusAddress)
                if try queue.push(head: request.head, length: used) { notify = true }
            } catch let error as VirtqueueError {
                throw VirtioBlockError.queue(error)
            } catch {
                throw VirtioBlockError.queue(.bufferOutsideMemory(head: request.head, address: request.statusAddress, length: 1))
            }
        }
        let epoch = epoch
        events.schedule { [weak self] in self?.resume(epoch, fromTimer: false) }
    }

    private func armTimer(afterNanoseconds delay: UInt64) {
        guard !timerArmed else { return }
        timerArmed = true
        let epoch = epoch
        // At least a millisecond (the loop's poll has that resolution), at most a minute (a
        // timer that fires early finds the bucket short and sets the next).
        let seconds = min(max(Double(delay) / 1e9, 0.001), 60)
        events.schedule(after: seconds) { [weak self] in self?.resume(epoch, fromTimer: true) }
    }

    /// Does one checked request; its status and the used length (§5.2.6: bytes written into the
    /// device-writable buffers, the status byte included).
    private func perform(_ request: BlockRequest, memory: GuestMemory) -> (BlockStatus, UInt32) {
        if let type = request.type { statistics.requests[type, default: 0] += 1 } else { statistics.other += 1 }
        let result: (BlockStatus, UInt32)
        switch request.operation {
        case .read(let sector, let buffers): result = read(sector: sector, into: buffers, memory: memory)
        case .write(let sector, let buffers): result = (write(sector: sector, from: buffers, memory: memory), 1)
        case .flush: result = (readOnly ? .ok : attempt { () throws(SystemError) in try storage.flush() }, 1)
        case .getID(let buffers): result = getID(into: buffers, memory: memory)
        case .discard(let ranges): result = (discard(ranges), 1)
        case .writeZeroes(let ranges): result = (writeZeroes(ranges), 1)
        case .refused(let problem): result = (problem.status, 1)
        }
        switch result.0 {
        case .ok: break
        case .ioError: statistics.ioErrors += 1
        case .unsupported: statistics.unsupported += 1
        }
        return result
    }

    /// `.ok`, or `.ioError` when `body` throws.
    private func attempt(_ body: () throws(SystemError) -> Void) -> BlockStatus {
        do throws(SystemError) {
            try body()
            return .ok
        } catch { return .ioError }
    }

    private static func offset(_ sector: UInt64) -> UInt64 { sector << 9 }

    private func read(sector: UInt64, into buffers: [VirtqueueBuffer], memory: GuestMemory) -> (BlockStatus, UInt32) {
        // Straight into guest RAM: the parser checked each piece lies in one region.
        var targets: [UnsafeMutableRawBufferPointer] = []
        targets.reserveCapacity(buffers.count)
        for b in buffers {
            guard let host = try? memory.hostAddress(b.address, length: UInt64(b.length)) else { return (.ioError, 1) }
            targets.append(UnsafeMutableRawBufferPointer(start: host, count: Int(b.length)))
        }
        let transfer = storage.read(into: targets, at: Self.offset(sector))
        statistics.bytesRead += UInt64(transfer.count)
        let wanted = targets.reduce(0) { $0 + $1.count }
        return (transfer.count == wanted ? .ok : .ioError, UInt32(transfer.count + 1))
    }

    private func write(sector: UInt64, from buffers: [VirtqueueBuffer], memory: GuestMemory) -> BlockStatus {
        var offset = Self.offset(sector)
        for b in buffers {
            guard let host = try? memory.hostAddress(b.address, length: UInt64(b.length)) else { return .ioError }
            let status = attempt { () throws(SystemError) in
                try storage.write(UnsafeRawBufferPointer(start: host, count: Int(b.length)), at: offset)
            }
            guard status == .ok else { return status }
            statistics.bytesWritten += UInt64(b.length)
            offset += UInt64(b.length)
        }
        return stabilise()
    }

    /// Without FLUSH negotiated a write is stable once completed (§5.2.6.2).
    private func stabilise() -> BlockStatus {
        writeThrough ? attempt { () throws(SystemError) in try storage.flush() } : .ok
    }

    private func getID(into buffers: [VirtqueueBuffer], memory: GuestMemory) -> (BlockStatus, UInt32) {
        var written = 0
        for b in buffers {
            let count = Int(b.length)
            guard (try? memory.write(identifier, from: written, count: count, at: b.address)) != nil else {
                return (.ioError, UInt32(written + 1))
            }
            written += count
        }
        return (.ok, UInt32(written + 1))
    }

    /// §5.2.6.2: a discard MAY deallocate. Where the file system cannot punch holes the ranges
    /// are left as they are (no zeros are promised), and the request still succeeds.
    private func discard(_ ranges: [BlockRange]) -> BlockStatus {
        for r in ranges {
            do throws(SystemError) {
                try storage.punchHole(at: Self.offset(r.sector), length: UInt64(r.sectors) << 9)
            } catch {
                guard Self.isUnsupported(error) else { return .ioError }
            }
        }
        return stabilise()
    }

    /// §5.2.6.2: after a write zeroes the ranges read as zeros. With unmap it punches a hole,
    /// without it zeroes in place; a file system that supports neither (EOPNOTSUPP: tmpfs has no
    /// ZERO_RANGE, some have no holes) gets the zeros written.
    private func writeZeroes(_ ranges: [BlockRange]) -> BlockStatus {
        for r in ranges {
            let offset = Self.offset(r.sector), length = UInt64(r.sectors) << 9
            do throws(SystemError) {
                if r.unmap { try storage.punchHole(at: offset, length: length) } else { try storage.zeroRange(at: offset, length: length) }
            } catch {
                guard Self.isUnsupported(error) else { return .ioError }
                guard writeZeros(at: offset, length: length) == .ok else { return .ioError }
            }
        }
        return stabilise()
    }

    private static let zeros = [UInt8](repeating: 0, count: 64 << 10)

    private func writeZeros(at offset: UInt64, length: UInt64) -> BlockStatus {
        var done: UInt64 = 0
        while done < length {
            let count = Int(min(UInt64(Self.zeros.count), length - done))
            let status = Self.zeros.withUnsafeBytes { all in
                attempt { () throws(SystemError) in
                    try storage.write(UnsafeRawBufferPointer(rebasing: all[0..<count]), at: offset + done)
                }
            }
            guard status == .ok else { return status }
            done += UInt64(count)
        }
        return .ok
    }

    /// The errnos by which fallocate(2) says this file (system) cannot do that mode.
    private static func isUnsupported(_ error: SystemError) -> Bool {
        error.errno == EOPNOTSUPP || error.errno == ENOSYS
    }
}
