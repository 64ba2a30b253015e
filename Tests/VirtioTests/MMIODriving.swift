import Devices
import Testing

/// The register work of a Linux virtio-mmio driver (drivers/virtio/virtio_mmio.c), shared by
/// the test guests of each device: register access, status, features, queue set-up.
protocol MMIODriving: AnyObject {
    var transport: VirtioMMIOTransport { get }
}

extension MMIODriving {
    func read(_ offset: UInt64, width: Int = 4) -> UInt32 {
        var data = [UInt8](repeating: 0xaa, count: width)
        transport.read(offset: offset, into: &data)
        return data.enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
    }

    func write(_ offset: UInt64, _ value: UInt32, width: Int = 4) {
        transport.write(offset: offset, data: (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) })
    }

    var status: UInt32 { read(Reg.status) }

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

    /// Reset, ACKNOWLEDGE, DRIVER, feature negotiation and the FEATURES_OK read-back
    /// (virtio_dev_probe → virtio_features_ok). Returns whether the device kept FEATURES_OK.
    @discardableResult
    func negotiate(accept: (UInt64) -> UInt64 = { $0 }) -> Bool {
        write(Reg.status, 0)
        addStatus(Status.acknowledge)
        addStatus(Status.driver)
        writeDriverFeatures(accept(deviceFeatures()))
        addStatus(Status.featuresOK)
        return read(Reg.status) & Status.featuresOK != 0
    }

    /// vm_setup_vq for queue `index` with `layout`'s rings (any size, even a bad one).
    func setUpQueue(_ index: Int, layout q: FakeDriver, size: UInt32? = nil) {
        write(Reg.queueSel, UInt32(index))
        #expect(read(Reg.queueReady) == 0, "queue \(index) already set up")
        #expect(read(Reg.queueNumMax) >= UInt32(q.size))
        write(Reg.queueNum, size ?? UInt32(q.size))
        write(Reg.queueDescLow, UInt32(truncatingIfNeeded: q.descriptorTable))
        write(Reg.queueDescHigh, UInt32(truncatingIfNeeded: q.descriptorTable >> 32))
        write(Reg.queueDriverLow, UInt32(truncatingIfNeeded: q.availableRing))
        write(Reg.queueDriverHigh, UInt32(truncatingIfNeeded: q.availableRing >> 32))
        write(Reg.queueDeviceLow, UInt32(truncatingIfNeeded: q.usedRing))
        write(Reg.queueDeviceHigh, UInt32(truncatingIfNeeded: q.usedRing >> 32))
        write(Reg.queueReady, 1)
    }
}
