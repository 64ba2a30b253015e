import Devices
import Glibc
import GuestMemory
import POSIX
import Testing

/// virtio-blk values from virtio 1.2 §5.2, written out here rather than taken from the device so
/// the tests check the spec's numbers.
enum Blk {
    static let typeIn: UInt32 = 0, typeOut: UInt32 = 1, typeFlush: UInt32 = 4, typeGetID: UInt32 = 8
    static let typeDiscard: UInt32 = 11, typeWriteZeroes: UInt32 = 13
    static let ok: UInt8 = 0, ioError: UInt8 = 1, unsupported: UInt8 = 2
    static let sizeMax: UInt64 = 1 << 1, segMax: UInt64 = 1 << 2, readOnly: UInt64 = 1 << 5, blockSize: UInt64 = 1 << 6
    static let flush: UInt64 = 1 << 9, discard: UInt64 = 1 << 13, writeZeroes: UInt64 = 1 << 14
    static let version1: UInt64 = 1 << 32, eventIndex: UInt64 = 1 << 29, indirect: UInt64 = 1 << 28
}

/// A disk image in /tmp filled with a known pattern, removed when released. `fd` is the test's
/// own descriptor; the device gets another, opened read-write or read-only.
final class TemporaryDisk {
    let path: String
    let size: Int

    /// Byte `p` of the initial pattern: never constant, so a copy from the wrong offset shows.
    static func byte(at p: Int) -> UInt8 { UInt8(truncatingIfNeeded: p &* 131 &+ (p >> 9) &* 7 &+ 0x21) }
    static func pattern(_ range: Range<Int>) -> [UInt8] { range.map(byte(at:)) }

    /// `sparse`: all zeros (ftruncate), for big disks whose bytes a test does not read.
    init(sectors: Int, sparse: Bool = false) throws {
        var template = Array("/tmp/blk-test-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        try #require(fd >= 0, "mkstemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        size = sectors * 512
        defer { Glibc.close(fd) }
        if sparse {
            try #require(ftruncate(fd, off_t(size)) == 0)
        } else {
            try FileIO.writeAll(fd, Self.pattern(0..<size))
        }
    }

    deinit { unlink(path) }

    /// A descriptor for the device: O_RDWR, or O_RDONLY.
    func open(writable: Bool) throws -> DiskFile {
        let fd = Glibc.open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC)
        try #require(fd >= 0)
        return DiskFile(adopting: fd, size: UInt64(size), writable: writable)
    }

    /// The file as it is now.
    var contents: [UInt8] { (try? FileIO.readFile(path, limit: 64 << 20)) ?? [] }

    /// Whether the file is still exactly the initial pattern.
    var isUntouched: Bool { contents == Self.pattern(0..<size) }
}

/// A `BlockStorage` in front of a real disk file that can fail on purpose and counts calls.
final class FaultyStorage: BlockStorage, @unchecked Sendable {
    let inner: DiskFile
    private let lock = Lock()
    /// A read stops with EIO after this many bytes (of all reads together).
    var failReadsAfter: Int?
    var failWrites = false
    var failFlush = false
    /// fallocate modes the "file system" does not support (EOPNOTSUPP).
    var noPunchHole = false
    var noZeroRange = false
    private(set) var calls: [String] = []
    private var readSoFar = 0

    init(_ inner: DiskFile) { self.inner = inner }

    var size: UInt64 { inner.size }
    var isWritable: Bool { inner.isWritable }
    func count(_ call: String) -> Int { lock.withLock { calls.filter { $0 == call }.count } }
    private func note(_ call: String) { lock.withLock { calls.append(call) } }

    func read(into buffers: [UnsafeMutableRawBufferPointer], at offset: UInt64) -> BlockTransfer {
        note("read")
        guard let limit = failReadsAfter else { return inner.read(into: buffers, at: offset) }
        // The first `limit` bytes of all reads together arrive; then EIO.
        var allowed = max(0, limit - readSoFar)
        var cut: [UnsafeMutableRawBufferPointer] = []
        for buffer in buffers where allowed > 0 {
            let take = min(buffer.count, allowed)
            cut.append(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<take]))
            allowed -= take
        }
        let part = inner.read(into: cut, at: offset)
        readSoFar += part.count
        let wanted = buffers.reduce(0) { $0 + $1.count }
        return part.count < wanted ? BlockTransfer(count: part.count, error: SystemError("preadv", errno: EIO)) : part
    }

    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(SystemError) {
        note("write")
        if failWrites { throw SystemError("pwrite", errno: EIO) }
        try inner.write(buffer, at: offset)
    }

    func flush() throws(SystemError) {
        note("flush")
        if failFlush { throw SystemError("fdatasync", errno: EIO) }
        try inner.flush()
    }

    func punchHole(at offset: UInt64, length: UInt64) throws(SystemError) {
        note("punchHole")
        if noPunchHole { throw SystemError("fallocate", errno: EOPNOTSUPP) }
        try inner.punchHole(at: offset, length: length)
    }

    func zeroRange(at offset: UInt64, length: UInt64) throws(SystemError) {
        note("zeroRange")
        if noZeroRange { throw SystemError("fallocate", errno: EOPNOTSUPP) }
        try inner.zeroRange(at: offset, length: length)
    }
}

/// A monotonic clock the test moves by hand.
final class ManualClock: @unchecked Sendable {
    private let lock = Lock()
    private var nanoseconds: UInt64 = 1_000_000_000
    var now: UInt64 { lock.withLock { nanoseconds } }
    func advance(seconds: Double) { lock.withLock { nanoseconds += UInt64(seconds * 1e9) } }
}

/// What the driver got back for one request.
struct BlockReply: Equatable {
    var status: UInt8
    var used: UInt32
}

/// A guest with RAM, a `VirtioBlock` over a temporary disk behind a virtio-mmio transport, and a
/// driver that builds requests as Linux's virtio_blk.c does: a 16-byte header descriptor, data
/// descriptors, a 1-byte status descriptor. Timers and scheduled work run when the test says.
final class BlockGuest: MMIODriving {
    static let memorySize: UInt64 = 0x80_0000
    /// Where request headers, status bytes and data buffers go.
    static let headerArea: UInt64 = 0x10000
    static let statusArea: UInt64 = 0x18000
    static let dataArea: UInt64 = 0x10_0000
    /// What untouched guest bytes hold.
    static let sentinel: UInt8 = 0xee

    let disk: TemporaryDisk
    let memory: GuestMemory
    let registry = PollRegistry()
    let clock = ManualClock()
    let irq = CountingLine()
    let failures = FailureLog()
    let device: VirtioBlock
    let transport: VirtioMMIOTransport
    let faults: FaultyStorage
    var driver: FakeDriver
    private var nextHeader: UInt64 = 0
    /// The status address of each head submitted, for reading replies.
    private var statusOf: [UInt16: UInt64] = [:]
    private var repliesSeen: UInt16 = 0

    /// `writable`: the device's descriptor is O_RDWR; `readOnly`: the device is told read-only
    /// (a writable descriptor and a read-only device shows the device's own check).
    init(sectors: Int = 64, sparse: Bool = false, writable: Bool = true, readOnly: Bool = false, serial: [UInt8] = Array("momin-disk-1".utf8),
         bytesPerSecond: RateLimiter.Limit? = nil, operationsPerSecond: RateLimiter.Limit? = nil) throws {
        disk = try TemporaryDisk(sectors: sectors, sparse: sparse)
        memory = try testMemory(size: Self.memorySize)
        faults = FaultyStorage(try disk.open(writable: writable))
        let clock = clock
        device = try VirtioBlock(storage: faults, readOnly: readOnly, serial: serial, bytesPerSecond: bytesPerSecond,
                                 operationsPerSecond: operationsPerSecond, events: registry, clock: { clock.now })
        transport = VirtioMMIOTransport(device: device, memory: memory, interrupt: irq,
                                        onFailure: { [failures] in failures.record($0) })
        driver = FakeDriver(memory: memory, size: 256, base: 0x1000)
        try memory.write([UInt8](repeating: Self.sentinel, count: 0x10000), at: Self.statusArea)
    }

    /// Reset, features (all offered unless `accept` says otherwise), the queue, DRIVER_OK.
    func probe(accept: (UInt64) -> UInt64 = { $0 }) {
        let featuresOK = negotiate(accept: accept)
        #expect(featuresOK)
        setUpQueue(0, layout: driver)
        addStatus(Status.driverOK)
        #expect(status == 0x0f)
    }

    var needsReset: Bool { status & Status.needsReset != 0 }
    func notify() { write(Reg.queueNotify, 0) }

    // MARK: Building requests

    /// A 16-byte `virtio_blk_req` header in guest memory (type, reserved, sector).
    func header(_ type: UInt32, sector: UInt64 = 0) -> UInt64 {
        let address = Self.headerArea + 32 * (nextHeader % 256)
        nextHeader += 1
        try! memory.store(type, at: address)
        try! memory.store(UInt32(0), at: address + 4)
        try! memory.store(sector, at: address + 8)
        return address
    }

    /// A fresh status byte, poisoned with the sentinel.
    func statusBuffer(_ length: UInt32 = 1) -> Buffer {
        let address = Self.statusArea + 64 * (nextHeader % 256)
        try! memory.write([UInt8](repeating: Self.sentinel, count: Int(length)), at: address)
        return .writable(address, length)
    }

    /// Fills guest bytes with the sentinel.
    func poison(_ address: UInt64, _ count: Int) { try! memory.write([UInt8](repeating: Self.sentinel, count: count), at: address) }
    func bytes(_ address: UInt64, _ count: Int) -> [UInt8] { try! memory.read(at: address, count: count) }
    func put(_ bytes: [UInt8], at address: UInt64) { try! memory.write(bytes, at: address) }

    /// Publishes `buffers` as one chain; the status byte is the chain's last writable byte.
    @discardableResult
    func submit(_ buffers: [Buffer], indirectTable: UInt64? = nil) -> UInt16 {
        let head = indirectTable.map { driver.addIndirectChain(buffers, table: $0) } ?? driver.addChain(buffers)
        if let last = buffers.last(where: \.writable) { statusOf[head] = last.address + UInt64(last.length) - 1 }
        return head
    }

    /// Submits, notifies, and returns the one reply the request must get.
    func request(_ buffers: [Buffer], sourceLocation: SourceLocation = #_sourceLocation) -> BlockReply? {
        submit(buffers)
        notify()
        let replies = takeReplies()
        #expect(replies.count == 1, "\(replies.count) replies", sourceLocation: sourceLocation)
        return replies.first
    }

    /// Replies that came since the last call, in order (status read where the request put it).
    func takeReplies() -> [BlockReply] {
        var replies: [BlockReply] = []
        while repliesSeen != driver.usedIndex {
            let element = driver.usedElement(repliesSeen)
            repliesSeen &+= 1
            let status = statusOf[UInt16(element.id)].map { try! memory.load(UInt8.self, at: $0) } ?? 0xff
            replies.append(BlockReply(status: status, used: element.length))
        }
        return replies
    }

    // MARK: Common requests (as Linux's driver lays them out)

    /// IN of `count` sectors from `sector` into one data buffer at `address`; the reply and the bytes.
    func read(sector: UInt64, count: Int, at address: UInt64 = dataArea) -> (BlockReply?, [UInt8]) {
        poison(address, count * 512)
        let reply = request([.readable(header(Blk.typeIn, sector: sector), 16), .writable(address, UInt32(count * 512)), statusBuffer()])
        return (reply, bytes(address, count * 512))
    }

    /// OUT of `data` to `sector` from one buffer.
    func write(sector: UInt64, _ data: [UInt8], at address: UInt64 = dataArea) -> BlockReply? {
        put(data, at: address)
        return request([.readable(header(Blk.typeOut, sector: sector), 16), .readable(address, UInt32(data.count)), statusBuffer()])
    }

    func flush() -> BlockReply? { request([.readable(header(Blk.typeFlush), 16), statusBuffer()]) }

    /// DISCARD or WRITE_ZEROES with `ranges` (sector, sectors, flags) as one table.
    func ranges(_ type: UInt32, _ ranges: [(UInt64, UInt32, UInt32)], at address: UInt64 = dataArea) -> BlockReply? {
        var table: [UInt8] = []
        for (sector, sectors, flags) in ranges {
            table += withUnsafeBytes(of: sector.littleEndian, Array.init) + withUnsafeBytes(of: sectors.littleEndian, Array.init)
                + withUnsafeBytes(of: flags.littleEndian, Array.init)
        }
        put(table, at: address)
        return request([.readable(header(type), 16), .readable(address, UInt32(table.count)), statusBuffer()])
    }

    /// Moves the device's clock and the registry's timers on together.
    @discardableResult
    func wait(seconds: Double) -> Int {
        clock.advance(seconds: seconds)
        return registry.advance(by: seconds)
    }
}

/// `DiskFile.read`: one preadv(2) fills a request's segments in order from consecutive bytes.
@Suite struct DiskFileReadTests {
    /// Separate allocations of `sizes` bytes (0xee each), read into, then their bytes in order.
    static func read(_ file: DiskFile, sizes: [Int], at offset: UInt64) -> (BlockTransfer, [UInt8]) {
        let buffers = sizes.map { size -> UnsafeMutableRawBufferPointer in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
            buffer.initializeMemory(as: UInt8.self, repeating: 0xee)
            return buffer
        }
        defer { for buffer in buffers { buffer.deallocate() } }
        let transfer = file.read(into: buffers, at: offset)
        return (transfer, buffers.flatMap { Array($0) })
    }

    @Test func segmentsOfAnySizeAreFilledFromConsecutiveBytes() throws {
        let disk = try TemporaryDisk(sectors: 16)
        let sizes = [512, 0, 1536, 4096, 512]
        let (transfer, bytes) = Self.read(try disk.open(writable: false), sizes: sizes, at: 1024)
        #expect(transfer == BlockTransfer(count: 6656))
        #expect(bytes == TemporaryDisk.pattern(1024..<7680))
    }

    @Test func aReadPastTheEndStopsThereWithoutAnError() throws {
        let disk = try TemporaryDisk(sectors: 4)
        let (transfer, bytes) = Self.read(try disk.open(writable: false), sizes: [1024, 1024], at: 1536)
        #expect(transfer == BlockTransfer(count: 512))
        #expect(Array(bytes.prefix(512)) == TemporaryDisk.pattern(1536..<2048))
        #expect(bytes.dropFirst(512).allSatisfy { $0 == 0xee })
    }
}
