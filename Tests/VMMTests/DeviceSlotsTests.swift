import LinuxBoot
import Testing
@testable import VMM

@Suite struct DeviceSlotsTests {
    @Test func windowsArePagesApartFromTheDeviceAreaWithPinsFromFive() throws {
        var slots = DeviceSlots()
        let first = try slots.allocate(size: 0x200)
        let second = try slots.allocate(size: 0x200)
        #expect(first == DeviceSlots.Slot(base: Layout.deviceMMIOStart, gsi: 5))
        #expect(second == DeviceSlots.Slot(base: Layout.deviceMMIOStart + 0x1000, gsi: 6))
        // A window larger than a page takes whole pages, and the next one starts after it.
        let large = try slots.allocate(size: 0x1800)
        let after = try slots.allocate(size: 1)
        #expect(large.base == Layout.deviceMMIOStart + 0x2000)
        #expect(after.base == Layout.deviceMMIOStart + 0x4000)
    }

    @Test func theNineteenthDeviceTakesPin23AndTheTwentiethIsRefused() throws {
        var slots = DeviceSlots()
        var last: DeviceSlots.Slot?
        for _ in 0..<19 { last = try slots.allocate(size: 0x200) }
        #expect(last?.gsi == 23)
        do {
            _ = try slots.allocate(size: 0x200)
            Issue.record("a twentieth device got a pin")
        } catch {
            #expect(error.description == "no interrupt pin left for another device (GSIs 5–23 are taken)")
        }
    }

    @Test func aWindowThatWouldReachTheIOAPICIsRefused() throws {
        var slots = DeviceSlots()
        let room = DeviceSlots.windowsEnd - Layout.deviceMMIOStart
        #expect(throws: VMMError.self) { try slots.allocate(size: room + 1) }
        let whole = try slots.allocate(size: room)
        #expect(whole.base + room == Layout.ioAPIC)
    }
}

@Suite struct GuestDiskNameTests {
    /// Linux's virtio_blk names disks as sd does: vda … vdz, vdaa … vdzz, vdaaa.
    @Test func disksAreNamedAsLinuxNamesThem() {
        #expect((0..<3).map(MachineBuilder.guestDiskName) == ["vda", "vdb", "vdc"])
        #expect(MachineBuilder.guestDiskName(25) == "vdz")
        #expect(MachineBuilder.guestDiskName(26) == "vdaa")
        #expect(MachineBuilder.guestDiskName(27) == "vdab")
        #expect(MachineBuilder.guestDiskName(26 + 26 * 26) == "vdaaa")
    }
}
