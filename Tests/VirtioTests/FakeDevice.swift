import Devices
import GuestMemory
import POSIX
import Testing

/// An interrupt line that counts its edges.
final class CountingLine: InterruptLine, @unchecked Sendable {
    private let lock = Lock()
    private var edges = 0
    var count: Int { lock.withLock { edges } }
    func trigger() { lock.withLock { edges += 1 } }
}

/// What a transport told its VMM about device failures, in order.
final class FailureLog: @unchecked Sendable {
    private let lock = Lock()
    private var entries: [String] = []
    var reasons: [String] { lock.withLock { entries } }
    func record(_ reason: String) { lock.withLock { entries.append(reason) } }
}

/// A virtio device for transport tests: two queues, a small configuration space, and on each
/// notification it drains the queue, writes a reply into each chain and returns it.
final class FakeDevice: VirtioDevice, @unchecked Sendable {
    static let deviceFeature: UInt64 = 1 << 0
    let deviceType: UInt32 = VirtioDeviceType.vsock
    let offeredFeatures: UInt64 = FakeDevice.deviceFeature | VirtioFeature.eventIndex | VirtioFeature.indirectDescriptors
    let queueMaxSizes: [UInt16] = [256, 128]

    private let lock = Lock()
    private var config: [UInt8] = [3, 0, 0, 0, 0, 0, 0, 0]  // a vsock guest_cid of 3, le64
    private var _activation: VirtioActivation?
    private var _activations = 0
    private var _resets = 0
    private var _notified: [Int] = []
    private var _chains: [DescriptorChain] = []
    var failActivation = false

    var activation: VirtioActivation? { lock.withLock { _activation } }
    var activations: Int { lock.withLock { _activations } }
    var resets: Int { lock.withLock { _resets } }
    var notified: [Int] { lock.withLock { _notified } }
    var chains: [DescriptorChain] { lock.withLock { _chains } }
    var configBytes: [UInt8] { lock.withLock { config } }

    func readConfig(offset: Int, into data: inout [UInt8]) {
        lock.withLock {
            for i in data.indices where offset + i < config.count { data[i] = config[offset + i] }
        }
    }

    func writeConfig(offset: Int, data: [UInt8]) {
        lock.withLock {
            for (i, b) in data.enumerated() where offset + i < config.count { config[offset + i] = b }
        }
    }

    func activate(_ activation: VirtioActivation) throws {
        try lock.withLock {
            _activations += 1
            if failActivation { throw FakeError.activationFailed }
            _activation = activation
        }
    }

    func queueNotified(_ index: Int) throws {
        try lock.withLock {
            _notified.append(index)
            guard let a = _activation, let queue = a.queues[index] else { return }
            while let chain = try queue.pop() {
                _chains.append(chain)
                let written = try chain.writeWritable(Array("ok".utf8))
                if try queue.push(head: chain.head, length: UInt32(written)) { a.notifier.usedBuffers() }
            }
        }
    }

    func reset() {
        lock.withLock {
            _resets += 1
            _activation = nil
        }
    }
}

enum FakeError: Error { case activationFailed }

/// Register offsets from the virtio 1.2 §4.2.2 table, written out here rather than taken from
/// the transport so the tests check the layout Linux's virtio_mmio.c uses.
enum Reg {
    static let magic: UInt64 = 0x000, version: UInt64 = 0x004, deviceID: UInt64 = 0x008, vendorID: UInt64 = 0x00c
    static let deviceFeatures: UInt64 = 0x010, deviceFeaturesSel: UInt64 = 0x014
    static let driverFeatures: UInt64 = 0x020, driverFeaturesSel: UInt64 = 0x024
    static let queueSel: UInt64 = 0x030, queueNumMax: UInt64 = 0x034, queueNum: UInt64 = 0x038
    static let queueReady: UInt64 = 0x044, queueNotify: UInt64 = 0x050
    static let interruptStatus: UInt64 = 0x060, interruptACK: UInt64 = 0x064, status: UInt64 = 0x070
    static let queueDescLow: UInt64 = 0x080, queueDescHigh: UInt64 = 0x084
    static let queueDriverLow: UInt64 = 0x090, queueDriverHigh: UInt64 = 0x094
    static let queueDeviceLow: UInt64 = 0x0a0, queueDeviceHigh: UInt64 = 0x0a4
    static let shmLenLow: UInt64 = 0x0b0
    static let configGeneration: UInt64 = 0x0fc, config: UInt64 = 0x100
}

/// Status bits (§2.1), written out.
enum Status {
    static let acknowledge: UInt32 = 1, driver: UInt32 = 2, driverOK: UInt32 = 4, featuresOK: UInt32 = 8
    static let needsReset: UInt32 = 0x40, failed: UInt32 = 0x80
}

/// A guest with RAM, a fake device behind a virtio-mmio transport, and a driver that pokes the
/// registers the way Linux's drivers/virtio/virtio_mmio.c and virtio.c do.
final class MMIOGuest: MMIODriving {
    let memory: GuestMemory
    let device = FakeDevice()
    let irq = CountingLine()
    let failures = FailureLog()
    let transport: VirtioMMIOTransport
    /// Ring layouts for the device's two queues.
    var queues: [FakeDriver]

    /// `deviceWork`, when given, receives what the transport hands to the device thread.
    init(deviceWork: VirtioMMIOTransport.DeviceWork? = nil) throws {
        memory = try testMemory()
        transport = VirtioMMIOTransport(device: device, memory: memory, interrupt: irq,
                                        onFailure: { [failures] in failures.record($0) }, deviceWork: deviceWork)
        queues = [FakeDriver(memory: memory, size: 256, base: 0x1000), FakeDriver(memory: memory, size: 128, base: 0x4000)]
    }

    /// vm_setup_vq for queue `index` with `queues[index]`'s layout (any size, even a bad one).
    func setUpQueue(_ index: Int, size: UInt32? = nil) { setUpQueue(index, layout: queues[index], size: size) }

    /// The whole probe, ending with DRIVER_OK (virtio_device_ready).
    func probe() {
        negotiate()
        for i in queues.indices { setUpQueue(i) }
        addStatus(Status.driverOK)
    }
}
