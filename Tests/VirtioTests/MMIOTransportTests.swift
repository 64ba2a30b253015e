import Devices
import GuestMemory
import POSIX
import Testing

/// The virtio-mmio transport (virtio 1.2 §4.2) driven register by register as Linux's
/// virtio_mmio.c does, plus everything it must refuse.
@Suite struct MMIOTransportTests {
    let guest: MMIOGuest
    init() throws { guest = try MMIOGuest() }

    // MARK: Probe

    @Test func identityRegisters() {
        #expect(guest.read(Reg.magic) == 0x7472_6976)  // "virt"
        #expect(guest.read(Reg.version) == 2)
        #expect(guest.read(Reg.deviceID) == 19)
        #expect(guest.read(Reg.vendorID) == 0x494d_4f4d)
        var bytes = [UInt8](repeating: 0, count: 4)
        guest.transport.read(offset: Reg.vendorID, into: &bytes)
        #expect(bytes == Array("MOMI".utf8))
    }

    @Test func featureWindowsAlwaysOfferVersion1() {
        guest.write(Reg.deviceFeaturesSel, 0)
        #expect(guest.read(Reg.deviceFeatures) == UInt32(FakeDevice.deviceFeature | 1 << 28 | 1 << 29))
        guest.write(Reg.deviceFeaturesSel, 1)
        #expect(guest.read(Reg.deviceFeatures) == 1)  // bit 32, VIRTIO_F_VERSION_1
        guest.write(Reg.deviceFeaturesSel, 2)
        #expect(guest.read(Reg.deviceFeatures) == 0)
    }

    @Test func linuxProbeSequenceActivatesTheDevice() throws {
        #expect(guest.read(Reg.magic) == 0x7472_6976)
        #expect(guest.read(Reg.version) == 2)
        #expect(guest.read(Reg.deviceID) != 0)
        _ = guest.read(Reg.vendorID)
        guest.write(Reg.status, 0)
        #expect(guest.read(Reg.status) == 0)
        guest.addStatus(Status.acknowledge)
        #expect(guest.read(Reg.status) == Status.acknowledge)
        guest.addStatus(Status.driver)
        let offered = guest.deviceFeatures()
        #expect(offered & 1 << 32 != 0)
        guest.writeDriverFeatures(offered)
        guest.addStatus(Status.featuresOK)
        #expect(guest.read(Reg.status) == Status.acknowledge | Status.driver | Status.featuresOK)
        for i in 0..<2 {
            guest.write(Reg.queueSel, UInt32(i))
            #expect(guest.read(Reg.queueReady) == 0)
            #expect(guest.read(Reg.queueNumMax) == [256, 128][i])
            guest.setUpQueue(i)
            #expect(guest.read(Reg.queueReady) == 1)
        }
        let generation = guest.read(Reg.configGeneration)
        #expect(guest.read(Reg.config, width: 4) == 3)  // guest_cid, low half
        #expect(guest.read(Reg.config + 4, width: 4) == 0)
        #expect(guest.read(Reg.configGeneration) == generation)
        #expect(guest.device.activations == 0)
        guest.addStatus(Status.driverOK)
        #expect(guest.read(Reg.status) == 0x0f)

        let activation = try #require(guest.device.activation)
        #expect(activation.features == offered)
        #expect(activation.queues.count == 2)
        let q0 = try #require(activation.queues[0])
        #expect(q0.size == 256 && q0.descriptorTable == 0x1000 && q0.eventIndex && q0.indirectDescriptors)
        #expect(activation.queues[1]?.size == 128)
        #expect(activation.notifier.isActive)
        #expect(guest.irq.count == 0)
        #expect(guest.transport.failure == nil)
    }

    @Test func driverMayUseAQueueSmallerThanTheMaximum() throws {
        guest.negotiate()
        guest.queues[0] = FakeDriver(memory: guest.memory, size: 16, base: 0x1000)
        guest.setUpQueue(0)
        guest.setUpQueue(1)
        guest.addStatus(Status.driverOK)
        #expect(guest.device.activation?.queues[0]?.size == 16)
    }

    // MARK: Feature negotiation (§2.2, §3.1.1)

    @Test func featuresOKIsRefusedWithoutVersion1() {
        #expect(!guest.negotiate { $0 & ~(1 << 32) })
        #expect(guest.read(Reg.status) == Status.acknowledge | Status.driver)
        guest.addStatus(Status.driverOK)
        #expect(guest.read(Reg.status) & Status.driverOK == 0)
        #expect(guest.device.activations == 0)
    }

    @Test(arguments: [UInt64(1) << 1, 1 << 40, 1 << 63])
    func featuresOKIsRefusedForAFeatureNotOffered(extra: UInt64) {
        #expect(!guest.negotiate { $0 | extra })
        #expect(guest.read(Reg.status) & Status.featuresOK == 0)
    }

    @Test func aSubsetOfTheOfferIsAccepted() {
        #expect(guest.negotiate { _ in 1 << 32 })
        guest.setUpQueue(0)
        guest.addStatus(Status.driverOK)
        #expect(guest.device.activation?.features == 1 << 32)
        #expect(guest.device.activation?.queues[0]?.eventIndex == false)
    }

    @Test func driverFeaturesAreFrozenByFeaturesOK() {
        guest.negotiate()
        guest.writeDriverFeatures(1 << 32)
        #expect(guest.transport.driverAcceptedFeatures == guest.deviceFeatures())
    }

    @Test func statusBitsComeInOrderAndAreNeverCleared() {
        guest.write(Reg.status, Status.driver)  // no ACKNOWLEDGE yet
        #expect(guest.read(Reg.status) == 0)
        guest.write(Reg.status, Status.acknowledge | Status.driver)
        #expect(guest.read(Reg.status) == Status.acknowledge | Status.driver)
        guest.write(Reg.status, Status.acknowledge)  // clearing DRIVER
        #expect(guest.read(Reg.status) == Status.acknowledge | Status.driver)
        guest.write(Reg.status, Status.acknowledge | Status.driver | Status.driverOK)  // skipping FEATURES_OK
        #expect(guest.read(Reg.status) == Status.acknowledge | Status.driver)
        guest.writeDriverFeatures(guest.deviceFeatures())
        guest.write(Reg.status, Status.acknowledge | Status.featuresOK)  // adds a bit but clears DRIVER
        #expect(guest.read(Reg.status) == Status.acknowledge | Status.driver)
        guest.write(Reg.status, Status.acknowledge | Status.driver | Status.failed)
        #expect(guest.read(Reg.status) == Status.acknowledge | Status.driver | Status.failed)
        #expect(guest.failures.reasons.isEmpty)  // the driver giving up is not a device failure
    }

    // MARK: Queue setup refusals (§2.7, §4.2.3.2) → DEVICE_NEEDS_RESET

    private func expectNeedsReset(queue: Int = 0) {
        #expect(guest.read(Reg.status) & Status.needsReset != 0)
        #expect(guest.read(Reg.interruptStatus) == 0x2)  // configuration change
        #expect(guest.irq.count == 1)
        guest.write(Reg.queueSel, UInt32(queue))
        #expect(guest.read(Reg.queueReady) == 0)
        guest.addStatus(Status.driverOK)
        #expect(guest.device.activations == 0)
        // The VMM hears of the failure once, with the reason the transport keeps.
        let failure = guest.transport.failure
        #expect(failure != nil)
        #expect(guest.failures.reasons == [failure].compactMap { $0 })
    }

    @Test(arguments: [UInt32(0), 100, 512, 0x1_0100])
    func badQueueSizeNeedsReset(size: UInt32) {
        guest.negotiate()
        guest.setUpQueue(0, size: size)
        expectNeedsReset()
    }

    @Test(arguments: [(UInt64(0x1008), UInt64(0x2000), UInt64(0x2208)), (0x1000, 0x2001, 0x2208), (0x1000, 0x2000, 0x220a)])
    func misalignedRingNeedsReset(desc: UInt64, avail: UInt64, used: UInt64) {
        guest.negotiate()
        guest.queues[0] = CustomLayout.driver(guest.memory, desc, avail, used)
        guest.setUpQueue(0)
        expectNeedsReset()
    }

    @Test(arguments: [(UInt64(0xf_f800), UInt64(0x2000), UInt64(0x2208)), (0x1000, 0x1_0000_0000, 0x2208),
                      (0x1000, 0x2000, 0xffff_ffff_ffff_fffc)])
    func ringOutsideRAMNeedsReset(desc: UInt64, avail: UInt64, used: UInt64) {
        guest.negotiate()
        guest.queues[0] = CustomLayout.driver(guest.memory, desc, avail, used)
        guest.setUpQueue(0)
        expectNeedsReset()
    }

    @Test func queueWritesBeforeFeaturesOKAreIgnored() {
        guest.write(Reg.status, Status.acknowledge | Status.driver)
        guest.write(Reg.queueSel, 0)
        guest.write(Reg.queueNum, 256)
        guest.write(Reg.queueDescLow, 0x1000)
        guest.write(Reg.queueReady, 1)
        #expect(guest.read(Reg.queueReady) == 0)
        guest.writeDriverFeatures(guest.deviceFeatures())
        guest.addStatus(Status.featuresOK)
        guest.write(Reg.queueReady, 1)  // QueueNum was never taken: size 0
        #expect(guest.read(Reg.status) & Status.needsReset != 0)
    }

    @Test func queueWritesWhileReadyAreIgnored() {
        guest.negotiate()
        guest.setUpQueue(0)
        guest.write(Reg.queueNum, 3)
        guest.write(Reg.queueDescLow, 0xdead_beef)
        guest.setUpQueue(1)
        guest.addStatus(Status.driverOK)
        #expect(guest.device.activation?.queues[0]?.size == 256)
        #expect(guest.device.activation?.queues[0]?.descriptorTable == 0x1000)
    }

    /// vm_setup_vq's error path writes QueueReady = 0 and reads it back.
    @Test func queueReadyZeroTakesTheQueueBack() {
        guest.negotiate()
        guest.setUpQueue(0)
        guest.setUpQueue(1)
        guest.write(Reg.queueSel, 1)
        guest.write(Reg.queueReady, 0)
        #expect(guest.read(Reg.queueReady) == 0)
        guest.addStatus(Status.driverOK)
        #expect(guest.device.activation?.queues[0] != nil)
        #expect(guest.device.activation?.queues[1] == nil)
    }

    @Test func missingQueuesReadAsUnavailable() {
        guest.write(Reg.queueSel, 2)
        #expect(guest.read(Reg.queueNumMax) == 0)
        #expect(guest.read(Reg.queueReady) == 0)
    }

    // MARK: Buffers, notifications, interrupts

    @Test func usedBufferNotificationRoundTrip() throws {
        guest.probe()
        let driver = guest.queues[0]
        let head = driver.addChain([.readable(0x8000, 4), .writable(0x9000, 16)])
        guest.write(Reg.queueNotify, 0)
        #expect(guest.device.notified == [0])
        #expect(driver.usedIndex == 1)
        #expect(driver.usedElement(0) == (id: UInt32(head), length: 2))
        #expect(try guest.memory.read(at: 0x9000, count: 2) == Array("ok".utf8))
        #expect(guest.read(Reg.interruptStatus) == 0x1)
        #expect(guest.irq.count == 1)

        // Edge-triggered: a second used buffer before the ACK adds no bit and no edge. (EVENT_IDX
        // was negotiated: the driver asks for each one through used_event, as virtqueue_enable_cb.)
        driver.usedEvent = 1
        driver.addChain([.writable(0x9000, 16)])
        guest.write(Reg.queueNotify, 0)
        #expect(driver.usedIndex == 2)
        #expect(guest.irq.count == 1)
        guest.write(Reg.interruptACK, 0x1)
        #expect(guest.read(Reg.interruptStatus) == 0)
        driver.usedEvent = 2
        driver.addChain([.writable(0x9000, 16)])
        guest.write(Reg.queueNotify, 0)
        #expect(guest.irq.count == 2)
        // With used_event left behind, the device stays quiet (§2.7.7.2).
        guest.write(Reg.interruptACK, 0x1)
        driver.addChain([.writable(0x9000, 16)])
        guest.write(Reg.queueNotify, 0)
        #expect(driver.usedIndex == 4)
        #expect(guest.irq.count == 2)
        #expect(guest.read(Reg.interruptStatus) == 0)
    }

    @Test func notificationsForUnreadyOrMissingQueuesAreDropped() {
        guest.negotiate()
        guest.setUpQueue(0)
        guest.write(Reg.queueNotify, 0)  // before DRIVER_OK
        guest.addStatus(Status.driverOK)
        guest.write(Reg.queueNotify, 1)  // never made ready
        guest.write(Reg.queueNotify, 7)  // no such queue
        guest.transport.queueNotified(-1)
        #expect(guest.device.notified == [])
        guest.write(Reg.queueNotify, 0)
        #expect(guest.device.notified == [0])
    }

    @Test func notificationsFromAnEventLoopThread() async throws {
        guest.probe()
        let driver = guest.queues[0]
        for i in 0..<200 { driver.addChain([.readable(0x8000 + UInt64(i), 1)]) }
        let transport = guest.transport
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { for _ in 0..<10 { transport.queueNotified(0) } } }
            group.addTask { for _ in 0..<100 { _ = transport.status; _ = transport.interruptStatus } }
        }
        #expect(guest.device.chains.count == 200)
        #expect(Set(guest.device.chains.map(\.readable[0].address)).count == 200)
        #expect(driver.usedIndex == 200)
        #expect(guest.device.notified.count == 80)
    }

    @Test func configurationChangeBumpsTheGenerationAndInterrupts() throws {
        guest.probe()
        let before = guest.read(Reg.configGeneration)
        try #require(guest.device.activation).notifier.configurationChanged()
        #expect(guest.read(Reg.configGeneration) == before &+ 1)
        #expect(guest.read(Reg.interruptStatus) == 0x2)
        #expect(guest.irq.count == 1)
    }

    // MARK: Device errors → DEVICE_NEEDS_RESET (§2.1.2)

    @Test func corruptQueueStopsTheDeviceUntilTheDriverResets() throws {
        guest.probe()
        let driver = guest.queues[0]
        driver.setAvailIndex(1000)
        guest.write(Reg.queueNotify, 0)
        #expect(guest.read(Reg.status) == 0x0f | Status.needsReset)
        #expect(guest.read(Reg.interruptStatus) == 0x2)
        #expect(guest.irq.count == 1)
        #expect(guest.transport.failure?.contains("available index 1000") == true)
        let activation = try #require(guest.device.activation)
        #expect(activation.queues.allSatisfy { $0?.isStopped == true })
        #expect(!activation.notifier.isActive)

        // Stopped: no more notifications reach the device, and used-buffer signals are dropped.
        driver.setAvailIndex(0)
        guest.write(Reg.queueNotify, 0)
        guest.write(Reg.queueNotify, 1)
        #expect(guest.device.notified == [0])
        activation.notifier.usedBuffers()
        #expect(guest.read(Reg.interruptStatus) == 0x2)

        // Linux ORs status bits it reads back, NEEDS_RESET included; that must not clear it.
        guest.addStatus(Status.failed)
        #expect(guest.read(Reg.status) & Status.needsReset != 0)

        // The VMM was told once, however many times the stopped device was poked since.
        #expect(guest.failures.reasons.count == 1)
        #expect(guest.failures.reasons.first?.contains("available index 1000") == true)
    }

    @Test func diagnosticsShowStatusQueuesAndFailure() throws {
        #expect(guest.transport.diagnostics == ["status 0x0, interrupt status 0x0", "queue 0: not ready", "queue 1: not ready"])
        guest.probe()
        guest.queues[0].setAvailIndex(3)
        let lines = guest.transport.diagnostics
        #expect(lines.first == "status 0xf, interrupt status 0x0")
        #expect(lines.count == 3)
        #expect(lines[1].hasPrefix("queue 0: size 256, avail idx 3 (taken 0), used idx 0 (ours 0)"))
        guest.queues[0].setAvailIndex(1000)
        guest.write(Reg.queueNotify, 0)
        let failed = guest.transport.diagnostics
        #expect(failed.first?.contains("failed: ") == true)
        #expect(failed[1] == "queue 0: stopped")
    }

    @Test func activationFailureNeedsReset() {
        guest.device.failActivation = true
        guest.probe()
        #expect(guest.read(Reg.status) & Status.needsReset != 0)
        #expect(guest.read(Reg.interruptStatus) == 0x2)
        #expect(guest.transport.failure?.contains("activation") == true)
        guest.write(Reg.status, 0)
        #expect(guest.device.resets == 1)
    }

    @Test func resetClearsEverything() throws {
        guest.probe()
        let old = try #require(guest.device.activation)
        guest.queues[0].setAvailIndex(1000)
        guest.write(Reg.queueNotify, 0)
        let generation = guest.read(Reg.configGeneration)
        #expect(guest.read(Reg.status) & Status.needsReset != 0)

        guest.write(Reg.status, 0)
        #expect(guest.read(Reg.status) == 0)
        #expect(guest.read(Reg.interruptStatus) == 0)
        #expect(guest.device.resets == 1)
        #expect(guest.transport.failure == nil)
        #expect(guest.failures.reasons.count == 1)  // the failure before the reset, told once
        #expect(guest.transport.driverAcceptedFeatures == 0)
        for i in 0..<2 {
            guest.write(Reg.queueSel, UInt32(i))
            #expect(guest.read(Reg.queueReady) == 0)
        }
        #expect(guest.read(Reg.configGeneration) == generation)  // never goes back
        // The old activation is dead: its queues are stopped and its notifier inert.
        #expect(old.queues.allSatisfy { $0?.isStopped == true })
        #expect(!old.notifier.isActive)
        old.notifier.usedBuffers()
        old.notifier.fail(FakeError.activationFailed)
        #expect(guest.read(Reg.interruptStatus) == 0)
        #expect(guest.read(Reg.status) == 0)

        // And the device comes back up on a fresh probe with fresh rings.
        guest.queues = [FakeDriver(memory: guest.memory, size: 256, base: 0x1000), FakeDriver(memory: guest.memory, size: 128, base: 0x4000)]
        try guest.memory.zero(at: 0x1000, count: 0x6000)
        guest.probe()
        #expect(guest.read(Reg.status) == 0x0f)
        #expect(guest.device.activations == 2)
        guest.queues[0].addChain([.writable(0x9000, 8)])
        guest.write(Reg.queueNotify, 0)
        #expect(guest.queues[0].usedIndex == 1)
    }

    /// A device thread may still hold the old queues after a reset; they must not write to
    /// memory the driver may already have reused.
    @Test func resetStopsHealthyQueuesBeforeTheDeviceHearsOfIt() throws {
        guest.probe()
        let old = try #require(guest.device.activation)
        let driver = guest.queues[0]
        driver.addChain([.writable(0x9000, 8)])
        let queue = try #require(old.queues[0])
        let chain = try #require(try queue.pop())
        guest.write(Reg.status, 0)
        #expect(throws: VirtqueueError.stopped) { try queue.push(head: chain.head, length: 8) }
        #expect(throws: VirtqueueError.stopped) { try old.queues[1]?.pop() }
        #expect(driver.usedIndex == 0)
    }

    @Test func resetBeforeActivationDoesNotResetTheDevice() {
        guest.negotiate()
        guest.setUpQueue(0)
        guest.write(Reg.status, 0)
        #expect(guest.device.resets == 0)
        guest.write(Reg.queueSel, 0)
        #expect(guest.read(Reg.queueReady) == 0)
    }

    // MARK: Access widths (§4.2.2.2)

    @Test func controlRegistersOnlyAnswerAligned32BitAccesses() {
        #expect(guest.read(Reg.magic, width: 2) == 0)
        #expect(guest.read(Reg.magic, width: 1) == 0)
        #expect(guest.read(Reg.magic + 2, width: 4) == 0)
        #expect(guest.read(Reg.magic, width: 8) == 0)
        guest.write(Reg.status, Status.acknowledge, width: 2)
        guest.write(Reg.status + 1, Status.acknowledge, width: 4)
        #expect(guest.read(Reg.status) == 0)
        #expect(guest.read(0x0f8) == 0)  // unknown register
        #expect(guest.read(Reg.shmLenLow) == 0xffff_ffff)  // no shared memory region
    }

    @Test func configSpaceAllowsNaturallyAligned8_16_32BitAccesses() {
        #expect(guest.read(Reg.config, width: 1) == 3)
        #expect(guest.read(Reg.config, width: 2) == 3)
        #expect(guest.read(Reg.config, width: 4) == 3)
        #expect(guest.read(Reg.config + 1, width: 2) == 0)  // misaligned: ignored
        #expect(guest.read(Reg.config, width: 8) == 0)
        #expect(guest.read(0x1fe, width: 2) == 0)  // past the device's 8 bytes
        guest.write(Reg.config + 4, 0x1234, width: 2)
        guest.write(Reg.config + 5, 0xff, width: 2)  // misaligned: ignored
        #expect(guest.device.configBytes == [3, 0, 0, 0, 0x34, 0x12, 0, 0])
    }
}

/// A FakeDriver whose rings sit where a test says, even where no driver should put them.
enum CustomLayout {
    static func driver(_ memory: GuestMemory, _ desc: UInt64, _ avail: UInt64, _ used: UInt64) -> FakeDriver {
        FakeDriver(memory: memory, size: 256, descriptorTable: desc, availableRing: avail, usedRing: used)
    }
}

/// Work the transport hands to the device thread, held until the test runs it.
final class HeldWork: @unchecked Sendable {
    private let lock = Lock()
    private var jobs: [@Sendable () -> Void] = []
    var count: Int { lock.withLock { jobs.count } }
    func post(_ job: @escaping @Sendable () -> Void) { lock.withLock { jobs.append(job) } }
    func runAll() {
        let due = lock.withLock { () -> [@Sendable () -> Void] in
            defer { jobs.removeAll() }
            return jobs
        }
        for job in due { job() }
    }
}

/// A vCPU thread writes the registers; the device's own code (activation, reset, a
/// notification written to QueueNotify) runs as device work, on the device thread in the VMM,
/// so the vCPU's seccomp filter needs none of the device's syscalls.
@Suite struct DeviceWorkTests {
    @Test func activationResetAndAWrittenNotificationRunAsDeviceWorkInOrder() throws {
        let work = HeldWork()
        let guest = try MMIOGuest(deviceWork: work.post)
        guest.probe()
        // The driver sees DRIVER_OK at once; the device has not run on the writing thread.
        #expect(guest.read(Reg.status) == 0x0f)
        #expect(guest.device.activations == 0 && work.count == 1)
        work.runAll()
        #expect(guest.device.activations == 1)
        guest.write(Reg.queueNotify, 0)
        #expect(guest.device.notified == [] && work.count == 1)
        work.runAll()
        #expect(guest.device.notified == [0])
        // A reset, then a second probe: the device is reset before it is activated again.
        guest.write(Reg.status, 0)
        #expect(guest.read(Reg.status) == 0 && guest.device.resets == 0)
        guest.probe()
        #expect(guest.device.resets == 0 && guest.device.activations == 1 && work.count == 2)
        work.runAll()
        #expect(guest.device.resets == 1 && guest.device.activations == 2 && guest.device.activation != nil)
    }
}
