import GuestMemory
import POSIX

/// The virtio-mmio transport, version 2 (virtio 1.2 §4.2): the register window a guest driver
/// (Linux `drivers/virtio/virtio_mmio.c`) uses to find a device, negotiate features, set up its
/// split virtqueues and exchange notifications. Legacy (version 1) registers are not offered.
///
/// Threads: vCPU threads access registers (serialised by `control`); the device's event loop
/// calls `queueNotified` when it drains an ioeventfd on QueueNotify, and signals interrupts
/// through its `VirtioNotifier`. What a register write asks of the device itself (activation
/// at DRIVER_OK, reset at a Status of 0, a notification written without an ioeventfd) is handed
/// to `deviceWork`, the device thread in the VMM, so a vCPU thread never runs device code and
/// its seccomp filter needs none of the device's calls. State both sides touch lives in
/// `TransportSignals`, under its own lock, which is never held while calling the device.
public final class VirtioMMIOTransport: BusDevice, @unchecked Sendable {
    /// The window this transport answers: registers up to 0xff, configuration space after.
    public static let windowSize: UInt64 = 0x200
    /// "virt" in little-endian (§4.2.2).
    public static let magicValue: UInt32 = 0x7472_6976
    public static let version: UInt32 = 2
    /// "MOMI" in little-endian, as MagicValue spells "virt": the bytes 'M' 'O' 'M' 'I'.
    public static let vendorID: UInt32 = 0x494d_4f4d
    /// Where drivers write a queue index to notify the device; register an ioeventfd here.
    public static let queueNotifyOffset: UInt64 = Register.queueNotify

    /// Register offsets (§4.2.2, table "MMIO Device Register Layout").
    enum Register {
        static let magicValue: UInt64 = 0x000
        static let version: UInt64 = 0x004
        static let deviceID: UInt64 = 0x008
        static let vendorID: UInt64 = 0x00c
        static let deviceFeatures: UInt64 = 0x010
        static let deviceFeaturesSel: UInt64 = 0x014
        static let driverFeatures: UInt64 = 0x020
        static let driverFeaturesSel: UInt64 = 0x024
        static let queueSel: UInt64 = 0x030
        static let queueNumMax: UInt64 = 0x034
        static let queueNum: UInt64 = 0x038
        static let queueReady: UInt64 = 0x044
        static let queueNotify: UInt64 = 0x050
        static let interruptStatus: UInt64 = 0x060
        static let interruptACK: UInt64 = 0x064
        static let status: UInt64 = 0x070
        static let queueDescLow: UInt64 = 0x080
        static let queueDescHigh: UInt64 = 0x084
        static let queueDriverLow: UInt64 = 0x090
        static let queueDriverHigh: UInt64 = 0x094
        static let queueDeviceLow: UInt64 = 0x0a0
        static let queueDeviceHigh: UInt64 = 0x0a4
        static let shmSel: UInt64 = 0x0ac
        static let shmLenLow: UInt64 = 0x0b0
        static let shmBaseHigh: UInt64 = 0x0bc
        static let configGeneration: UInt64 = 0x0fc
        static let config: UInt64 = 0x100
    }

    /// What the driver has written for one queue, before and after it is made ready.
    private struct QueueSetup {
        let maxSize: UInt16
        var size: UInt32 = 0
        var ready = false
        var descriptorTable: UInt64 = 0
        var availableRing: UInt64 = 0
        var usedRing: UInt64 = 0
    }

    public let device: any VirtioDevice
    private let memory: GuestMemory
    private let offeredFeatures: UInt64
    private let signals: TransportSignals

    private let control = Lock()
    private var deviceFeaturesSel: UInt32 = 0
    private var driverFeaturesSel: UInt32 = 0
    private var driverFeatures: UInt64 = 0
    private var queueSel: UInt32 = 0
    private var setups: [QueueSetup]
    private var activated = false
    private let deviceWork: DeviceWork

    /// Runs work for the device, in the order given, on the thread that serves its queues.
    public typealias DeviceWork = @Sendable (@escaping @Sendable () -> Void) -> Void

    /// `onFailure` hears, once per failure, why the device set DEVICE_NEEDS_RESET (§2.1.2).
    /// Without `deviceWork`, device work runs on the thread that wrote the register (tests).
    public init(device: any VirtioDevice, memory: GuestMemory, interrupt: any InterruptLine,
                onFailure: (@Sendable (String) -> Void)? = nil, deviceWork: DeviceWork? = nil) {
        self.deviceWork = deviceWork ?? { $0() }
        let sizes = device.queueMaxSizes
        for s in sizes {
            precondition(s > 0 && s & (s &- 1) == 0 && Int(s) <= SplitQueue.maximumSize,
                         "virtio queue maximum \(s) is not a power of two up to 32768")
        }
        self.device = device
        self.memory = memory
        offeredFeatures = device.offeredFeatures | VirtioFeature.version1
        signals = TransportSignals(queueCount: sizes.count, interrupt: interrupt, onFailure: onFailure)
        setups = sizes.map { QueueSetup(maxSize: $0) }
    }

    /// The Status register as the driver reads it.
    public var status: UInt32 { signals.lock.withLock { signals.status } }
    public var interruptStatus: UInt32 { signals.lock.withLock { signals.interruptStatus } }
    /// Why the device last set DEVICE_NEEDS_RESET, for the VMM's log.
    public var failure: String? { signals.lock.withLock { signals.failure } }
    /// The features the driver has written so far (final once FEATURES_OK is set).
    public var driverAcceptedFeatures: UInt64 { control.withLock { driverFeatures } }

    /// Lines for the VMM's state dump: status, interrupt status, failure, each live queue.
    public var diagnostics: [String] {
        let (status, interrupts, failure, queues) = signals.lock.withLock {
            (signals.status, signals.interruptStatus, signals.failure, signals.queues)
        }
        var lines = ["status 0x\(String(status, radix: 16)), interrupt status 0x\(String(interrupts, radix: 16))"
                     + (failure.map { ", failed: \($0)" } ?? "")]
        for (index, queue) in queues.enumerated() {
            lines.append("queue \(index): " + (queue?.diagnostics ?? "not ready"))
        }
        return lines
    }

    // MARK: - Notifications

    /// The driver notified queue `index`: called by the event loop that drains this queue's
    /// ioeventfd, and by a QueueNotify write when no ioeventfd is registered. Forwarded to the
    /// device only while it is active, the queue ready and no reset needed (§4.2.3.3).
    public func queueNotified(_ index: Int) {
        let epoch: UInt64? = signals.lock.withLock {
            guard signals.deviceActive, signals.status & VirtioStatus.failed == 0,
                  signals.queues.indices.contains(index), signals.queues[index] != nil else { return nil }
            return signals.epoch
        }
        guard let epoch else { return }
        do { try device.queueNotified(index) } catch {
            signals.fail(String(describing: error), epoch: epoch)
        }
    }

    // MARK: - BusDevice

    public func read(offset: UInt64, into data: inout [UInt8]) {
        for i in data.indices { data[i] = 0 }
        if offset >= Register.config {
            guard configAccessIsValid(offset: offset, width: data.count) else { return }
            control.withLock { device.readConfig(offset: Int(offset - Register.config), into: &data) }
            return
        }
        // §4.2.2.2: control registers are read 32 bits wide and aligned; anything else is ignored.
        guard data.count == 4, offset % 4 == 0 else { return }
        let value = control.withLock { readRegister(offset) }
        for i in 0..<4 { data[i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
    }

    public func write(offset: UInt64, data: [UInt8]) {
        if offset >= Register.config {
            guard configAccessIsValid(offset: offset, width: data.count) else { return }
            control.withLock { device.writeConfig(offset: Int(offset - Register.config), data: data) }
            return
        }
        guard data.count == 4, offset % 4 == 0 else { return }
        var value: UInt32 = 0
        for i in 0..<4 { value |= UInt32(data[i]) << (8 * UInt32(i)) }
        if offset == Register.queueNotify {
            // The queue index (VIRTIO_F_NOTIFICATION_DATA is not offered), on the device thread
            // as an ioeventfd's would be: a write reaches here only when none matched.
            let index = Int(value)
            deviceWork { [self] in queueNotified(index) }
            return
        }
        control.withLock { writeRegister(offset, value) }
    }

    /// §4.2.2.2: configuration space is accessed 8, 16 or 32 bits wide, naturally aligned.
    private func configAccessIsValid(offset: UInt64, width: Int) -> Bool {
        guard width == 1 || width == 2 || width == 4 else { return false }
        return offset % UInt64(width) == 0 && offset + UInt64(width) <= Self.windowSize
    }

    private var selectedSetup: QueueSetup? {
        setups.indices.contains(Int(queueSel)) ? setups[Int(queueSel)] : nil
    }

    private func readRegister(_ offset: UInt64) -> UInt32 {
        switch offset {
        case Register.magicValue: return Self.magicValue
        case Register.version: return Self.version
        case Register.deviceID: return device.deviceType
        case Register.vendorID: return Self.vendorID
        case Register.deviceFeatures:
            // 32-bit windows of the 64-bit feature set; selectors past 1 read 0.
            switch deviceFeaturesSel {
            case 0: return UInt32(truncatingIfNeeded: offeredFeatures)
            case 1: return UInt32(truncatingIfNeeded: offeredFeatures >> 32)
            default: return 0
            }
        case Register.queueNumMax: return UInt32(selectedSetup?.maxSize ?? 0)  // 0: no such queue
        case Register.queueReady: return selectedSetup?.ready == true ? 1 : 0
        case Register.interruptStatus: return signals.lock.withLock { signals.interruptStatus }
        case Register.status: return signals.lock.withLock { signals.status }
        case Register.configGeneration: return signals.lock.withLock { signals.configGeneration }
        case Register.shmLenLow...Register.shmBaseHigh:
            return UInt32.max  // no shared memory regions: length and base read as all ones
        default: return 0
        }
    }

    private func writeRegister(_ offset: UInt64, _ value: UInt32) {
        switch offset {
        case Register.deviceFeaturesSel: deviceFeaturesSel = value
        case Register.driverFeaturesSel: driverFeaturesSel = value
        case Register.driverFeatures: writeDriverFeatures(value)
        case Register.queueSel: queueSel = value
        case Register.queueNum: updateSetup { $0.size = value }
        case Register.queueDescLow: updateSetup { $0.descriptorTable = low($0.descriptorTable, value) }
        case Register.queueDescHigh: updateSetup { $0.descriptorTable = high($0.descriptorTable, value) }
        case Register.queueDriverLow: updateSetup { $0.availableRing = low($0.availableRing, value) }
        case Register.queueDriverHigh: updateSetup { $0.availableRing = high($0.availableRing, value) }
        case Register.queueDeviceLow: updateSetup { $0.usedRing = low($0.usedRing, value) }
        case Register.queueDeviceHigh: updateSetup { $0.usedRing = high($0.usedRing, value) }
        case Register.queueReady: writeQueueReady(value)
        case Register.interruptACK:
            signals.lock.withLock { signals.interruptStatus &= ~value }
        case Register.status: writeStatus(value)
        default: break  // read-only or unknown: ignored
        }
    }

    private func low(_ old: UInt64, _ v: UInt32) -> UInt64 { old & 0xffff_ffff_0000_0000 | UInt64(v) }
    private func high(_ old: UInt64, _ v: UInt32) -> UInt64 { old & 0xffff_ffff | UInt64(v) << 32 }

    /// Queue setup happens after FEATURES_OK and before DRIVER_OK (§3.1.1 step 7), and only
    /// while the queue is not ready (§4.2.2.2); other writes are ignored.
    private var queueSetupAllowed: Bool {
        let s = signals.lock.withLock { signals.status }
        let blocking = VirtioStatus.driverOK | VirtioStatus.deviceNeedsReset | VirtioStatus.failed
        return s & VirtioStatus.featuresOK != 0 && s & blocking == 0
    }

    private func updateSetup(_ change: (inout QueueSetup) -> Void) {
        let i = Int(queueSel)
        guard queueSetupAllowed, setups.indices.contains(i), !setups[i].ready else { return }
        change(&setups[i])
    }

    /// Feature bits are written while DRIVER is set and before FEATURES_OK (§3.1.1 steps 4-5).
    private func writeDriverFeatures(_ value: UInt32) {
        let s = signals.lock.withLock { signals.status }
        guard s & VirtioStatus.driver != 0, s & VirtioStatus.featuresOK == 0 else { return }
        switch driverFeaturesSel {
        case 0: driverFeatures = driverFeatures & 0xffff_ffff_0000_0000 | UInt64(value)
        case 1: driverFeatures = driverFeatures & 0xffff_ffff | UInt64(value) << 32
        default: break
        }
    }

    /// QueueReady = 1 checks the queue (size, alignment, rings in RAM) and makes it; a bad queue
    /// sets DEVICE_NEEDS_RESET. QueueReady = 0 before DRIVER_OK takes it back.
    private func writeQueueReady(_ value: UInt32) {
        let i = Int(queueSel)
        guard queueSetupAllowed, setups.indices.contains(i) else { return }
        switch value {
        case 0:
            setups[i].ready = false
            signals.lock.withLock {
                signals.queues[i]?.stop()
                signals.queues[i] = nil
            }
        case 1 where !setups[i].ready:
            let s = setups[i]
            do {
                let queue = try SplitQueue(
                    size: Int(s.size), maximumSize: Int(s.maxSize), descriptorTable: s.descriptorTable,
                    availableRing: s.availableRing, usedRing: s.usedRing, memory: memory, features: driverFeatures)
                setups[i].ready = true
                signals.lock.withLock { signals.queues[i] = queue }
            } catch {
                let epoch = signals.lock.withLock { signals.epoch }
                signals.fail("queue \(i): \(error)", epoch: epoch)
            }
        default:
            break
        }
    }

    /// The device status state machine (§2.1, §3.1.1). Zero resets. Otherwise the driver only
    /// adds bits, in order: ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK; a bit whose predecessor
    /// is missing is dropped, as are writes that clear bits. DEVICE_NEEDS_RESET is the device's.
    private func writeStatus(_ value: UInt32) {
        if value == 0 { reset(); return }
        let current = signals.lock.withLock { signals.status }
        let requested = value & 0xff & ~VirtioStatus.deviceNeedsReset
        let driverBits = current & ~VirtioStatus.deviceNeedsReset
        guard requested & driverBits == driverBits else { return }  // §2.1.1: never clear a bit
        let added = requested & ~current
        var next = current
        if added & VirtioStatus.acknowledge != 0 { next |= VirtioStatus.acknowledge }
        if added & VirtioStatus.driver != 0, next & VirtioStatus.acknowledge != 0 { next |= VirtioStatus.driver }
        if added & VirtioStatus.featuresOK != 0, next & VirtioStatus.driver != 0, featuresAcceptable {
            next |= VirtioStatus.featuresOK
        }
        var activate = false
        if added & VirtioStatus.driverOK != 0, next & VirtioStatus.featuresOK != 0 {
            next |= VirtioStatus.driverOK
            activate = next & VirtioStatus.deviceNeedsReset == 0
        }
        if added & VirtioStatus.failed != 0 { next |= VirtioStatus.failed }
        signals.lock.withLock {
            // NEEDS_RESET may have been set meanwhile by the device thread; keep it.
            signals.status = next | signals.status & VirtioStatus.deviceNeedsReset
        }
        if activate { activateDevice() }
    }

    /// §2.2.1 / §2.2.2: refuse FEATURES_OK if the driver accepted a feature we did not offer, or
    /// (§6.1, modern interface) did not accept VIRTIO_F_VERSION_1.
    private var featuresAcceptable: Bool {
        driverFeatures & ~offeredFeatures == 0 && driverFeatures & VirtioFeature.version1 != 0
    }

    private func activateDevice() {
        let (queues, epoch): ([SplitQueue?], UInt64) = signals.lock.withLock {
            signals.deviceActive = true
            return (signals.queues, signals.epoch)
        }
        let activation = VirtioActivation(queues: queues, memory: memory, features: driverFeatures,
                                          notifier: VirtioNotifier(signals: signals, epoch: epoch))
        // Even a failed activation may have kept something; reset() lets the device drop it.
        activated = true
        deviceWork { [device, signals] in
            do { try device.activate(activation) } catch { signals.fail("activation: \(error)", epoch: epoch) }
        }
    }

    /// Writing 0 to Status (§2.1, §4.2.2.1): stop and forget every queue, clear the interrupt
    /// status and all driver-written state, and reset the device. ConfigGeneration keeps
    /// counting, so a driver can never see an old value again.
    private func reset() {
        signals.lock.withLock {
            for q in signals.queues { q?.stop() }
            signals.queues = Array(repeating: nil, count: signals.queues.count)
            signals.status = 0
            signals.interruptStatus = 0
            signals.deviceActive = false
            signals.failure = nil
            signals.epoch &+= 1
        }
        deviceFeaturesSel = 0
        driverFeaturesSel = 0
        driverFeatures = 0
        queueSel = 0
        setups = setups.map { QueueSetup(maxSize: $0.maxSize) }
        if activated {
            activated = false
            deviceWork { [device] in device.reset() }
        }
    }
}
