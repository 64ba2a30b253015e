/// The tables as one blob to copy into guest memory at `base`.
public struct ACPITables: Sendable, Equatable {
    /// RSDP, XSDT, FADT, DSDT, MADT, in that order, each starting 8-byte aligned.
    public let bytes: [UInt8]
    /// Guest-physical address of the RSDP, which is `base`; give it to the kernel in
    /// boot_params.acpi_rsdp_addr, or rely on the legacy scan of 0xE0000-0xFFFFF.
    public let rsdpAddress: UInt64
    /// Guest-physical address of `bytes[0]`.
    public let base: UInt64
}

/// Builds the ACPI tables of a hardware-reduced x86-64 microVM (ACPI 6.5 §4.1), as Firecracker
/// and cloud-hypervisor do: RSDP → XSDT → {FADT → DSDT, MADT}.
public enum ACPIBuilder {
    /// The blob must fit the 128 KiB BIOS area 0xE0000-0xFFFFF that Linux scans for the RSDP.
    public static let maximumSize = 0x20000
    /// SLP_TYP of \_S5_ (soft-off) in the DSDT: the sleep-control device powers off on a
    /// write with this type and SLP_EN.
    public static let s5SleepType: UInt8 = 5

    /// Lays the tables out contiguously from guest-physical `base`, which must be 16-byte
    /// aligned (where the RSDP is searched for). Throws `ACPIError` for a bad configuration.
    public static func build(_ config: ACPIConfiguration, at base: UInt64) throws(ACPIError) -> ACPITables {
        try validate(config)
        guard base % 16 == 0 else { throw ACPIError.misalignedBase(base) }
        let identity = try TableIdentity(config)

        let dsdt = try DSDT.make(config: config, identity: identity)
        let madt = MADT.make(config: config, identity: identity)

        let xsdtOffset = align8(RSDP.length)
        let fadtOffset = align8(xsdtOffset + XSDT.length(entryCount: 2))
        let dsdtOffset = align8(fadtOffset + FADT.length)
        let madtOffset = align8(dsdtOffset + dsdt.count)
        let total = madtOffset + madt.count
        guard total <= maximumSize else { throw ACPIError.tablesTooLarge(size: total, limit: maximumSize) }
        guard base <= UInt64.max - UInt64(total) else { throw ACPIError.baseOutOfRange(base) }

        let fadt = FADT.make(dsdtAddress: base + UInt64(dsdtOffset), config: config, identity: identity)
        let xsdt = XSDT.make(entries: [base + UInt64(fadtOffset), base + UInt64(madtOffset)], identity: identity)
        let rsdp = RSDP.make(xsdtAddress: base + UInt64(xsdtOffset), identity: identity)

        var blob = ByteWriter()
        for (offset, table) in [(0, rsdp), (xsdtOffset, xsdt), (fadtOffset, fadt), (dsdtOffset, dsdt), (madtOffset, madt)] {
            blob.pad(toMultipleOf: 8)
            precondition(blob.count == offset, "ACPI layout drifted")
            blob.append(bytes: table)
        }
        return ACPITables(bytes: blob.bytes, rsdpAddress: base, base: base)
    }

    static func validate(_ config: ACPIConfiguration) throws(ACPIError) {
        // xAPIC ids are 8-bit and 0xFF is the broadcast id, which Linux ignores in the MADT.
        guard (1...255).contains(config.vcpuCount) else { throw ACPIError.invalidVCPUCount(config.vcpuCount) }
        guard Int(config.ioAPICID) >= config.vcpuCount else {
            throw ACPIError.ioAPICIDConflictsWithCPU(config.ioAPICID)
        }
        let devices = config.virtioMMIO
        guard devices.count <= DSDT.maxDevices else { throw ACPIError.tooManyDevices(devices.count) }
        for (index, device) in devices.enumerated() {
            guard device.size > 0 else { throw ACPIError.emptyDeviceWindow(index: index) }
            let limit: UInt64 = 1 << 32
            guard device.base < limit, device.size <= limit - device.base, device.size <= UInt64(UInt32.max) else {
                throw ACPIError.deviceWindowNot32Bit(index: index, base: device.base, size: device.size)
            }
        }
        let byBase = devices.indices.sorted { devices[$0].base < devices[$1].base }
        for (lower, upper) in zip(byBase, byBase.dropFirst())
        where devices[lower].base + devices[lower].size > devices[upper].base {
            throw ACPIError.overlappingDeviceWindows(min(lower, upper), max(lower, upper))
        }
    }

    static func align8(_ offset: Int) -> Int { (offset + 7) & ~7 }
}
