import Devices
import GuestMemory
import Testing

/// virtio-rng (virtio 1.2 §5.4) brought up through the virtio-mmio transport the way Linux's
/// virtio_mmio.c and virtio-rng.c do, fed by a deterministic entropy source.
@Suite struct VirtioRNGTests {
    let guest: RNGGuest
    init() throws { guest = try RNGGuest() }

    /// Feature bits from the spec, written out: VIRTIO_F_VERSION_1 (§6) and
    /// VIRTIO_F_EVENT_IDX (§6, ring feature 29).
    static let version1: UInt64 = 1 << 32
    static let eventIndex: UInt64 = 1 << 29

    // MARK: Identity (§5.4.1-§5.4.4)

    @Test func identifiesAsAnEntropyDeviceWithOneQueue() {
        #expect(guest.read(Reg.magic) == 0x7472_6976)
        #expect(guest.read(Reg.deviceID) == 4)
        let offered = guest.deviceFeatures()
        #expect(offered & Self.version1 != 0)
        #expect(offered & Self.eventIndex != 0)
        guest.write(Reg.queueSel, 0)
        #expect(guest.read(Reg.queueNumMax) == 256)
        #expect(VirtioRNG.queueSize == 256)
        guest.write(Reg.queueSel, 1)
        #expect(guest.read(Reg.queueNumMax) == 0)  // §5.4.2: one queue only
        // §5.4.4: no configuration space; every byte reads as zero.
        #expect(guest.read(Reg.config, width: 4) == 0)
        #expect(guest.read(Reg.config + 4, width: 1) == 0)
    }

    @Test func linuxProbeActivatesTheDeviceWithoutError() {
        guest.probe()
        #expect(guest.transport.driverAcceptedFeatures == Self.version1 | Self.eventIndex)
        #expect(guest.transport.failure == nil)
        #expect(guest.irq.count == 0)
        #expect(guest.entropy.requests == [])  // nothing asked for yet

        // A notification for a queue the device does not have (the transport filters these,
        // but the device must not take it for its request queue) serves nothing.
        guest.driver.addChain([.writable(0x10000, 16)])
        #expect(throws: Never.self) { try guest.rng.queueNotified(1) }
        #expect(guest.driver.usedIndex == 0)
        guest.notify()
        #expect(guest.driver.usedIndex == 1)
    }

    // MARK: Requests (§5.4.6)

    @Test func aSixteenByteBufferGetsTheSourcesBytes() throws {
        guest.probe()
        try guest.poison(0x10000, 32)
        let head = guest.driver.addChain([.writable(0x10000, 16)])
        guest.notify()

        #expect(guest.driver.usedIndex == 1)
        #expect(guest.driver.usedElement(0) == (id: UInt32(head), length: 16))
        #expect(try guest.bytes(0x10000, 16) == RNGTestEntropy.stream(from: 0, count: 16))
        #expect(try guest.isUntouched(0x10010, 16))  // not a byte past the buffer
        #expect(guest.entropy.requests == [16])
        #expect(guest.rng.bytesServed == 16)
        #expect(guest.transport.failure == nil)
    }

    @Test func severalChainsInOneNotificationAreServedInOrder() throws {
        guest.probe()
        try guest.poison(0x10000, 0x4000)
        // Sizes 8, 32 (two descriptors of 12 and 20), 5; each gets the next slice of the stream.
        let heads = [
            guest.driver.addChain([.writable(0x10000, 8)]),
            guest.driver.addChain([.writable(0x11000, 12), .writable(0x12000, 20)]),
            guest.driver.addChain([.writable(0x13000, 5)]),
        ]
        guest.notify()

        #expect(guest.driver.usedIndex == 3)
        #expect(guest.driver.usedElement(0) == (id: UInt32(heads[0]), length: 8))
        #expect(guest.driver.usedElement(1) == (id: UInt32(heads[1]), length: 32))
        #expect(guest.driver.usedElement(2) == (id: UInt32(heads[2]), length: 5))
        #expect(guest.entropy.requests == [8, 32, 5])
        #expect(try guest.bytes(0x10000, 8) == RNGTestEntropy.stream(from: 0, count: 8))
        #expect(try guest.bytes(0x11000, 12) == RNGTestEntropy.stream(from: 8, count: 12))
        #expect(try guest.bytes(0x12000, 20) == RNGTestEntropy.stream(from: 20, count: 20))
        #expect(try guest.bytes(0x13000, 5) == RNGTestEntropy.stream(from: 40, count: 5))
        #expect(try guest.isUntouched(0x10008, 0x1000 - 8))
        #expect(try guest.isUntouched(0x1100c, 0x1000 - 12))
        #expect(try guest.isUntouched(0x12014, 0x1000 - 20))
        #expect(try guest.isUntouched(0x13005, 0x1000 - 5))
        #expect(guest.rng.bytesServed == 45)
        #expect(guest.irq.count == 1)  // one batch, one interrupt
    }

    /// A guest cannot make the host produce more than 64 KiB per chain, however big the chain.
    @Test func aOneMebibyteChainGetsExactly64KiB() throws {
        guest.probe()
        let base: UInt64 = 0x10_0000
        let mib = 0x10_0000
        try guest.poison(base, mib)
        // 48 KiB + 48 KiB + 464 KiB + 464 KiB = 1 MiB; the cap falls 16 KiB into the second.
        let kib = 1024
        let sizes = [48 * kib, 48 * kib, 464 * kib, 464 * kib]
        var buffers: [Buffer] = []
        var address = base
        for s in sizes {
            buffers.append(.writable(address, UInt32(s)))
            address += UInt64(s)
        }
        #expect(address == base + UInt64(mib))
        let head = guest.driver.addChain(buffers)
        guest.notify()

        #expect(VirtioRNG.maximumRequest == 64 * kib)
        #expect(guest.driver.usedIndex == 1)
        #expect(guest.driver.usedElement(0) == (id: UInt32(head), length: UInt32(VirtioRNG.maximumRequest)))
        #expect(guest.entropy.requests == [VirtioRNG.maximumRequest])
        #expect(try guest.bytes(base, VirtioRNG.maximumRequest) == RNGTestEntropy.stream(from: 0, count: VirtioRNG.maximumRequest))
        #expect(try guest.isUntouched(base + UInt64(VirtioRNG.maximumRequest), mib - VirtioRNG.maximumRequest))
        #expect(guest.rng.bytesServed == VirtioRNG.maximumRequest)
        #expect(guest.transport.failure == nil)
    }

    // MARK: Malformed requests → DEVICE_NEEDS_RESET (§5.4.6.1, §2.1.2)

    /// §5.4.6.1: the driver's buffers are device-writable only. A chain with a device-readable
    /// descriptor stops the device: NEEDS_RESET, a configuration change interrupt, and not a
    /// byte of guest memory written.
    @Test(arguments: [
        [Buffer.readable(0x10000, 16)],
        [Buffer.readable(0x10000, 16), .writable(0x11000, 16)],
    ])
    func aReadableDescriptorNeedsReset(chain: [Buffer]) throws {
        guest.probe()
        try guest.poison(0x10000, 0x2000)
        guest.driver.addChain(chain)
        guest.notify()

        #expect(guest.read(Reg.status) == 0x0f | Status.needsReset)
        #expect(guest.read(Reg.interruptStatus) == 0x2)  // configuration change, no used buffer
        #expect(guest.irq.count == 1)
        #expect(guest.transport.failure?.contains("device-readable buffer where only writable ones are allowed") == true)
        #expect(try guest.isUntouched(0x10000, 0x2000))
        #expect(guest.driver.usedIndex == 0)
        #expect(guest.entropy.requests == [])  // refused before drawing entropy
        #expect(guest.rng.bytesServed == 0)

        // Stopped: a well-formed request after it is not served until the driver resets.
        guest.driver.addChain([.writable(0x12000, 16)])
        guest.notify()
        #expect(guest.driver.usedIndex == 0)
        #expect(guest.entropy.requests == [])
    }

    @Test func afterAResetTheDriverCanBringTheDeviceUpAgain() throws {
        guest.probe()
        guest.driver.addChain([.readable(0x10000, 16)])
        guest.notify()
        #expect(guest.read(Reg.status) & Status.needsReset != 0)

        guest.write(Reg.status, 0)
        #expect(guest.read(Reg.status) == 0)
        #expect(guest.read(Reg.interruptStatus) == 0)
        #expect(guest.transport.failure == nil)
        // The device dropped its queue: a stray notification (say, an ioeventfd drained late)
        // reaching it directly does nothing and does not throw.
        #expect(throws: Never.self) { try guest.rng.queueNotified(0) }

        // virtio_mmio reprobes with fresh rings.
        try guest.memory.zero(at: 0x1000, count: 0x3000)
        guest.driver = FakeDriver(memory: guest.memory, size: 256, base: 0x1000)
        guest.probe()
        try guest.poison(0x20000, 32)
        let head = guest.driver.addChain([.writable(0x20000, 16)])
        guest.notify()
        #expect(guest.read(Reg.status) == 0x0f)
        #expect(guest.driver.usedIndex == 1)
        #expect(guest.driver.usedElement(0) == (id: UInt32(head), length: 16))
        #expect(try guest.bytes(0x20000, 16) == RNGTestEntropy.stream(from: 0, count: 16))
        #expect(try guest.isUntouched(0x20010, 16))
        #expect(guest.rng.bytesServed == 16)
        #expect(guest.irq.count == 2)  // the configuration change, then this used buffer
    }

    // MARK: Used buffer notifications (§2.7.7)

    /// Without EVENT_IDX, VIRTQ_AVAIL_F_NO_INTERRUPT decides (§2.7.7.1).
    @Test func usedBuffersInterruptUnlessTheDriverSaysNoInterrupt() throws {
        guest.probe(accept: { $0 & ~Self.eventIndex })
        #expect(guest.transport.driverAcceptedFeatures == Self.version1)

        guest.driver.addChain([.writable(0x10000, 16)])
        guest.notify()
        #expect(guest.irq.count == 1)
        #expect(guest.read(Reg.interruptStatus) == 0x1)
        guest.write(Reg.interruptACK, 0x1)

        guest.driver.addChain([.writable(0x10000, 16)])
        guest.notify()
        #expect(guest.irq.count == 2)
        #expect(guest.read(Reg.interruptStatus) == 0x1)
        guest.write(Reg.interruptACK, 0x1)

        guest.driver.availFlags = Flag.noInterrupt
        guest.driver.addChain([.writable(0x10000, 16)])
        guest.driver.addChain([.writable(0x10000, 16)])
        guest.notify()
        #expect(guest.driver.usedIndex == 4)  // served all the same
        #expect(guest.irq.count == 2)
        #expect(guest.read(Reg.interruptStatus) == 0)

        guest.driver.availFlags = 0
        guest.driver.addChain([.writable(0x10000, 16)])
        guest.notify()
        #expect(guest.irq.count == 3)
        #expect(guest.rng.bytesServed == 5 * 16)
    }

    /// With EVENT_IDX, used_event decides (§2.7.7.2), as virtqueue_enable_cb sets it.
    @Test func withEventIndexUsedEventDecides() throws {
        guest.probe()
        guest.driver.usedEvent = 0
        guest.driver.addChain([.writable(0x10000, 16)])
        guest.notify()  // used index 0 → 1 passes used_event 0
        #expect(guest.irq.count == 1)
        guest.write(Reg.interruptACK, 0x1)

        guest.driver.addChain([.writable(0x10000, 16)])
        guest.notify()  // 1 → 2 does not
        #expect(guest.driver.usedIndex == 2)
        #expect(guest.irq.count == 1)
        #expect(guest.read(Reg.interruptStatus) == 0)

        guest.driver.usedEvent = 2
        guest.driver.addChain([.writable(0x10000, 16)])
        guest.notify()  // 2 → 3 does
        #expect(guest.irq.count == 2)
        #expect(guest.read(Reg.interruptStatus) == 0x1)
    }

    // MARK: Activation (§3.1.1)

    /// Buffers a driver posts before DRIVER_OK (its QueueNotify then dropped) are served when
    /// the device is activated.
    @Test func buffersQueuedBeforeDriverOKAreServedAtActivation() throws {
        #expect(guest.negotiate())
        guest.setUpQueue()
        try guest.poison(0x10000, 0x2000)
        let first = guest.driver.addChain([.writable(0x10000, 16)])
        let second = guest.driver.addChain([.writable(0x11000, 8)])
        guest.notify()  // before DRIVER_OK: dropped
        #expect(guest.driver.usedIndex == 0)
        #expect(guest.entropy.requests == [])

        guest.addStatus(Status.driverOK)
        #expect(guest.read(Reg.status) == 0x0f)
        #expect(guest.driver.usedIndex == 2)
        #expect(guest.driver.usedElement(0) == (id: UInt32(first), length: 16))
        #expect(guest.driver.usedElement(1) == (id: UInt32(second), length: 8))
        #expect(try guest.bytes(0x10000, 16) == RNGTestEntropy.stream(from: 0, count: 16))
        #expect(try guest.bytes(0x11000, 8) == RNGTestEntropy.stream(from: 16, count: 8))
        #expect(guest.irq.count == 1)
        #expect(guest.read(Reg.interruptStatus) == 0x1)
    }

    /// A readable descriptor already queued at DRIVER_OK fails the activation the same way.
    @Test func aReadableDescriptorQueuedBeforeDriverOKNeedsReset() throws {
        #expect(guest.negotiate())
        guest.setUpQueue()
        try guest.poison(0x10000, 0x1000)
        guest.driver.addChain([.readable(0x10000, 16)])
        guest.addStatus(Status.driverOK)
        #expect(guest.read(Reg.status) & Status.needsReset != 0)
        #expect(guest.read(Reg.interruptStatus) == 0x2)
        #expect(guest.transport.failure?.contains("device-readable") == true)
        #expect(try guest.isUntouched(0x10000, 0x1000))
        #expect(guest.driver.usedIndex == 0)
    }

    // MARK: Statistics

    @Test func bytesServedCountsEveryByteHandedOut() throws {
        #expect(guest.rng.bytesServed == 0)
        guest.probe()
        guest.driver.addChain([.writable(0x10000, 16)])
        guest.notify()
        #expect(guest.rng.bytesServed == 16)
        guest.driver.addChain([.writable(0x10000, 100)])
        guest.driver.addChain([.writable(0x20000, 0x2_0000)])  // capped at 64 KiB
        guest.notify()
        #expect(guest.rng.bytesServed == 16 + 100 + VirtioRNG.maximumRequest)
        guest.notify()  // nothing new: nothing served
        #expect(guest.rng.bytesServed == 16 + 100 + VirtioRNG.maximumRequest)
        #expect(guest.entropy.requests.reduce(0, +) == guest.rng.bytesServed)
    }
}
