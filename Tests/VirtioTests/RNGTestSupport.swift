import Devices
import GuestMemory
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
final class RNGGuest {
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

    init() throws {
        memory = try testMemory(size: Self.memorySize)
        rng = VirtioRNG(entropy: entropy)
        transport = VirtioMMIOTransport(device: rng, memory: memory, interrupt: irq)
        driver = FakeDriver(memory: memory, size: 256, base: 0x1000)
    }

    // MARK: Registers

    func read(_ offset: UInt64, width: Int = 4) -> UInt32 {
        var data = [UInt8](repeating: 0xaa, count: width)
        transport.read(offset: offset, into: &data)
        return data.enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
    }

    func write(_ offset: UInt64, _ value: UInt32, width: Int = 4) {
        transport.write(offset: offset, data: (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) })
    }

    /// virtio_add_status: Linux ORs the new bit into what it reads back.
    func addStatus(_ bit: UInt32) { write(Reg.status, read(Reg.status) | bit) }

    /// vm_get_features: high word first, then low.
    func deviceFeatures() -> UInt64 {
        write(Reg.deviceFeaturesSel, 1)
        let high = UInt64(read(Reg.deviceFeatures))
        write(Reg.deviceFeaturesSel, 0)
        return high << 32 | UInt64(read(Reg.deviceFeatures))
    }

    /// vm_finalize_features: high word first, then low.
    func writeDriverFeatures(_ features: UInt64) {
        write(Reg.driverFeaturesSel, 1)
        write(Reg.driverFeatures, UInt32(truncatingIfNeeded: features >> 32))
        write(Reg.driverFeaturesSel, 0)
        write(Reg.driverFeatures, UInt32(truncatingIfNeeded: features))
    }

    /// Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK and its read-back.
    @discardableResult
    func negotiate(accept: (UInt64) -> UInt64 = { $0 }) -> Bool {
        write(Reg.status, 0)
        addStatus(Status.acknowledge)
        addStatus(Status.driver)
        writeDriverFeatures(accept(deviceFeatures()))
        addStatus(Status.featuresOK)
        return read(Reg.status) & Status.featuresOK != 0
    }

    /// vm_setup_vq for the request queue with `driver`'s layout.
    func setUpQueue() {
        let q = driver
        write(Reg.queueSel, 0)
        #expect(read(Reg.queueReady) == 0, "request queue already set up")
        #expect(read(Reg.queueNumMax) >= UInt32(q.size))
        write(Reg.queueNum, UInt32(q.size))
        write(Reg.queueDescLow, UInt32(truncatingIfNeeded: q.descriptorTable))
        write(Reg.queueDescHigh, UInt32(truncatingIfNeeded: q.descriptorTable >> 32))
        write(Reg.queueDriverLow, UInt32(truncatingIfNeeded: q.availableRing))
        write(Reg.queueDriverHigh, UInt32(truncatingIfNeeded: q.availableRing >> 32))
        write(Reg.queueDeviceLow, UInt32(truncatingIfNeeded: q.usedRing))
        write(Reg.queueDeviceHigh, UInt32(truncatingIfNeeded: q.usedRing >> 32))
        write(Reg.queueReady, 1)
    }

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
