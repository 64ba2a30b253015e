import Devices
import GuestMemory
import POSIX
import Testing

/// A deterministic entropy source: one endless, predictable byte stream, handed out in order
/// across calls, so a test knows exactly which bytes each request must receive. It also records
/// how many bytes each request asked for.
final class RNGTestEntropy: EntropySource, @unchecked Sendable {
    private let lock = Lock()
    private var position = 0
    private var _requests: [Int] = []

    /// What `fill` asked for, call by call.
    var requests: [Int] { lock.withLock { _requests } }

    /// Byte `p` of the stream: never constant over a run, so a copy at the wrong offset or of
    /// the wrong length shows.
    static func byte(at p: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: p &* 167 &+ (p >> 8) &* 31 &+ 0x5a)
    }

    /// Bytes `start ..< start + count` of the stream.
    static func stream(from start: Int, count: Int) -> [UInt8] {
        (start..<start + count).map(byte(at:))
    }

    func fill(_ count: Int) -> [UInt8] {
        lock.withLock {
            _requests.append(count)
            let bytes = Self.stream(from: position, count: max(count, 0))
            position += bytes.count
            return bytes
        }
    }
}

/// A guest with RAM, a `VirtioRNG` behind a virtio-mmio transport, and a driver that pokes the
/// registers as Linux's virtio_mmio.c does (the same sequence `MMIOGuest` uses for `FakeDevice`,
/// which is tied to that device).
final class RNGGuest: MMIODriving {
    /// Guest RAM: 4 MiB, so a 1 MiB request fits beside the rings.
    static let memorySize: UInt64 = 0x40_0000
    /// What untouched guest buffers hold, so a write shows.
    static let sentinel: UInt8 = 0xee

    let memory: GuestMemory
    let entropy = RNGTestEntropy()
    let rng: VirtioRNG
    let irq = CountingLine()
    let transport: VirtioMMIOTransport
    /// The layout of the request queue (queue 0).
    var driver: FakeDriver

    /// `source` replaces the recording test stream (`entropy` then sees no requests).
    init(source: (any EntropySource)? = nil) throws {
        memory = try testMemory(size: Self.memorySize)
        rng = VirtioRNG(entropy: source ?? entropy)
        transport = VirtioMMIOTransport(device: rng, memory: memory, interrupt: irq)
        driver = FakeDriver(memory: memory, size: 256, base: 0x1000)
    }

    /// vm_setup_vq for the request queue with `driver`'s layout.
    func setUpQueue() { setUpQueue(0, layout: driver) }

    /// The whole probe, ending with DRIVER_OK; checks the device came up healthy.
    func probe(accept: (UInt64) -> UInt64 = { $0 }) {
        let featuresOK = negotiate(accept: accept)
        #expect(featuresOK)
        setUpQueue()
        addStatus(Status.driverOK)
        #expect(read(Reg.status) == Status.acknowledge | Status.driver | Status.featuresOK | Status.driverOK)
    }

    /// QueueNotify for the request queue.
    func notify() { write(Reg.queueNotify, 0) }

    // MARK: Guest buffers

    /// Fills `count` bytes at `address` with the sentinel.
    func poison(_ address: UInt64, _ count: Int) throws {
        try memory.write([UInt8](repeating: Self.sentinel, count: count), at: address)
    }

    func bytes(_ address: UInt64, _ count: Int) throws -> [UInt8] {
        try memory.read(at: address, count: count)
    }

    func isUntouched(_ address: UInt64, _ count: Int) throws -> Bool {
        try bytes(address, count).allSatisfy { $0 == Self.sentinel }
    }
}
