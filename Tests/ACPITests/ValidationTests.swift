import Testing
@testable import ACPI

@Suite struct ValidationTests {
    let base: UInt64 = 0xE0000

    private func windows(_ count: Int, size: UInt64 = 0x200) -> [VirtioMMIODescriptor] {
        (0..<count).map { VirtioMMIODescriptor(base: 0xC000_0000 + UInt64($0) * size, size: size, gsi: 5) }
    }

    @Test(arguments: [0, -1, 256, 1000])
    func vcpuCountOutsideOneTo255IsRejected(count: Int) {
        #expect(throws: ACPIError.invalidVCPUCount(count)) {
            try ACPIBuilder.build(ACPIConfiguration(vcpuCount: count), at: base)
        }
    }

    @Test func vcpuCountBoundsAreAccepted() throws {
        _ = try ACPIBuilder.build(ACPIConfiguration(vcpuCount: 1), at: base)
        _ = try ACPIBuilder.build(ACPIConfiguration(vcpuCount: 255), at: base)
    }

    /// Raising vcpuCount after init leaves the old default I/O APIC id among the CPUs' ids.
    @Test func ioAPICIDMustNotBeACPUsID() {
        var config = ACPIConfiguration(vcpuCount: 2)
        config.vcpuCount = 4
        #expect(throws: ACPIError.ioAPICIDConflictsWithCPU(2)) { try ACPIBuilder.build(config, at: base) }
    }

    @Test func tooManyDevicesForTheirNames() {
        let config = ACPIConfiguration(vcpuCount: 1, virtioMMIO: windows(4097))
        #expect(throws: ACPIError.tooManyDevices(4097)) { try ACPIBuilder.build(config, at: base) }
    }

    @Test func thousandsOfDevicesDoNotFitTheBIOSArea() throws {
        let config = ACPIConfiguration(vcpuCount: 2, virtioMMIO: windows(3000))
        do {
            _ = try ACPIBuilder.build(config, at: base)
            Issue.record("3000 devices built")
        } catch {
            guard case .tablesTooLarge(let size, let limit) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(limit == 0x20000)
            #expect(size > limit)
        }
        // Well under the limit still builds.
        let fits = try ACPIBuilder.build(ACPIConfiguration(vcpuCount: 2, virtioMMIO: windows(1000)), at: base)
        #expect(fits.bytes.count <= ACPIBuilder.maximumSize)
    }

    @Test(arguments: [
        (UInt64(0xFFFF_F000), UInt64(0x2000)),
        (UInt64(0x1_0000_0000), UInt64(0x1000)),
        (UInt64(0), UInt64(0x1_0000_0000)),
        (UInt64.max, UInt64(0x1000)),
    ])
    func deviceWindowMustFit32Bits(base windowBase: UInt64, size: UInt64) {
        var config = ACPIConfiguration(vcpuCount: 1, virtioMMIO: windows(1))
        config.virtioMMIO.append(VirtioMMIODescriptor(base: windowBase, size: size, gsi: 6))
        #expect(throws: ACPIError.deviceWindowNot32Bit(index: 1, base: windowBase, size: size)) {
            try ACPIBuilder.build(config, at: base)
        }
    }

    @Test func windowEndingAt4GiBIsAccepted() throws {
        let config = ACPIConfiguration(vcpuCount: 1, virtioMMIO: [VirtioMMIODescriptor(base: 0xFFFF_F000, size: 0x1000, gsi: 5)])
        _ = try ACPIBuilder.build(config, at: base)
    }

    @Test func emptyWindowIsRejected() {
        let config = ACPIConfiguration(vcpuCount: 1, virtioMMIO: [VirtioMMIODescriptor(base: 0xD000_0000, size: 0, gsi: 5)])
        #expect(throws: ACPIError.emptyDeviceWindow(index: 0)) { try ACPIBuilder.build(config, at: base) }
    }

    @Test func overlappingWindowsAreRejected() throws {
        var config = ACPIConfiguration(vcpuCount: 1, virtioMMIO: windows(3))
        config.virtioMMIO[2].base = config.virtioMMIO[0].base + 0x1FF
        #expect(throws: ACPIError.overlappingDeviceWindows(0, 2)) { try ACPIBuilder.build(config, at: base) }
        config.virtioMMIO[2].base = 0xD000_0000  // adjacent windows are fine
        config.virtioMMIO[1].base = 0xD000_0000 - 0x200
        _ = try ACPIBuilder.build(config, at: base)
    }

    @Test func baseMustBe16ByteAlignedAndLeaveRoom() {
        let config = ACPIConfiguration(vcpuCount: 1)
        #expect(throws: ACPIError.misalignedBase(0xE0008)) { try ACPIBuilder.build(config, at: 0xE0008) }
        let top = UInt64.max & ~0xF
        #expect(throws: ACPIError.baseOutOfRange(top)) { try ACPIBuilder.build(config, at: top) }
    }

    @Test func identifiersMustBeShortPrintableASCII() throws {
        var config = ACPIConfiguration(vcpuCount: 1)
        config.oemID = "TOOLONG"
        #expect(throws: ACPIError.invalidIdentifier(field: "OEM ID", value: "TOOLONG", maxLength: 6)) {
            try ACPIBuilder.build(config, at: base)
        }
        config.oemID = "MÖMIN"
        #expect(throws: ACPIError.invalidIdentifier(field: "OEM ID", value: "MÖMIN", maxLength: 6)) {
            try ACPIBuilder.build(config, at: base)
        }
        config.oemID = "AB"  // short ones are padded with spaces
        config.creatorID = "X"
        let r = TableReader(try ACPIBuilder.build(config, at: base))
        #expect(r.bytes(at: base + 9, count: 6) == Array("AB    ".utf8))
        #expect(r.bytes(at: r.xsdtAddress + 28, count: 4) == Array("X   ".utf8))
    }
}
