/// The header fields shared by every table, checked once.
struct TableIdentity {
    let oemID: [UInt8]
    let oemTableID: [UInt8]
    let oemRevision: UInt32
    let creatorID: [UInt8]
    let creatorRevision: UInt32
    let hypervisorVendorID: [UInt8]

    init(_ config: ACPIConfiguration) throws(ACPIError) {
        oemID = try paddedASCII(config.oemID, field: "OEM ID", length: 6)
        oemTableID = try paddedASCII(config.oemTableID, field: "OEM table ID", length: 8)
        oemRevision = config.oemRevision
        creatorID = try paddedASCII(config.creatorID, field: "creator ID", length: 4)
        creatorRevision = config.creatorRevision
        hypervisorVendorID = try paddedASCII(config.hypervisorVendorID, field: "hypervisor vendor ID", length: 8)
    }
}

/// Printable ASCII, right-padded with spaces to `length` as ACPI identifiers are.
func paddedASCII(_ value: String, field: String, length: Int) throws(ACPIError) -> [UInt8] {
    let chars = Array(value.utf8)
    guard chars.count <= length, chars.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }) else {
        throw ACPIError.invalidIdentifier(field: field, value: value, maxLength: length)
    }
    return chars + [UInt8](repeating: 0x20, count: length - chars.count)
}

/// System Description Table Header (ACPI 6.5 §5.2.6): 36 bytes in front of every table
/// except the RSDP.
enum TableHeader {
    static let length = 36
    static let checksumOffset = 9

    /// Fills the header into the first 36 bytes of `table` and sets the checksum last, so
    /// that all bytes of the table sum to zero.
    static func finish(_ table: inout ByteWriter, signature: String, revision: UInt8, identity: TableIdentity) {
        table.put(bytes: Array(signature.utf8), at: 0)
        table.put(u32: UInt32(table.count), at: 4)
        table.put(u8: revision, at: 8)
        table.put(u8: 0, at: checksumOffset)
        table.put(bytes: identity.oemID, at: 10)
        table.put(bytes: identity.oemTableID, at: 16)
        table.put(u32: identity.oemRevision, at: 24)
        table.put(bytes: identity.creatorID, at: 28)
        table.put(u32: identity.creatorRevision, at: 32)
        table.put(u8: checksum(table.bytes), at: checksumOffset)
    }
}

/// Root System Description Pointer, revision 2 (ACPI 6.5 §5.2.5.3). Points at the XSDT only;
/// RsdtAddress stays 0 because every table has a 64-bit address in the XSDT.
enum RSDP {
    static let length = 36

    static func make(xsdtAddress: UInt64, identity: TableIdentity) -> [UInt8] {
        var t = ByteWriter(zeros: length)
        t.put(bytes: Array("RSD PTR ".utf8), at: 0)
        t.put(bytes: identity.oemID, at: 9)
        t.put(u8: 2, at: 15)  // Revision: 2 = ACPI 2.0 and later
        t.put(u32: 0, at: 16)  // RsdtAddress
        t.put(u32: UInt32(length), at: 20)
        t.put(u64: xsdtAddress, at: 24)
        // The first checksum covers the ACPI 1.0 part (bytes 0-19), the extended one all 36.
        t.put(u8: checksum(t.bytes[0..<20]), at: 8)
        t.put(u8: checksum(t.bytes), at: 32)
        return t.bytes
    }
}

/// Extended System Description Table (ACPI 6.5 §5.2.8): the header, then 64-bit addresses.
enum XSDT {
    static func length(entryCount: Int) -> Int { TableHeader.length + 8 * entryCount }

    static func make(entries: [UInt64], identity: TableIdentity) -> [UInt8] {
        var t = ByteWriter(zeros: TableHeader.length)
        for address in entries { t.append(u64: address) }
        TableHeader.finish(&t, signature: "XSDT", revision: 1, identity: identity)
        return t.bytes
    }
}

/// Generic Address Structure (ACPI 6.5 §5.2.3.2) for a byte-wide I/O port:
/// space 1 (System I/O), bit width 8, bit offset 0, access size 1 (byte), 64-bit address.
func ioPortRegister(_ port: UInt16) -> [UInt8] {
    [0x01, 8, 0, 1] + littleEndian(UInt64(port), width: 8)
}

/// Fixed ACPI Description Table (ACPI 6.5 §5.2.9), the 276-byte layout of ACPI 6.0 and later,
/// filled in for a hardware-reduced machine (§4.1): no PM1/GPE blocks, no SCI, no FACS. What
/// is left is X_DSDT, the sleep registers, the reset register and the flags.
enum FADT {
    static let length = 276
    /// Header revision 6 with minor version 3 names ACPI 6.3, the newest FADT that the iasl
    /// in Debian 12 knows; the layout has not changed since 6.0.
    static let revision: UInt8 = 6
    static let minorVersion: UInt8 = 3

    // Fixed Feature Flags (Table 5.10).
    static let flagPowerButton: UInt32 = 1 << 4  // no fixed-feature power button
    static let flagSleepButton: UInt32 = 1 << 5  // no fixed-feature sleep button
    static let flagResetRegisterSupported: UInt32 = 1 << 10
    static let flagHardwareReduced: UInt32 = 1 << 20
    /// Firecracker sets the two "button" bits as well: in hardware-reduced mode there are no
    /// fixed-feature buttons, and a set bit says so. RESET_REG_SUP because RESET_REG is real.
    static let flags = flagHardwareReduced | flagResetRegisterSupported | flagPowerButton | flagSleepButton

    // IA-PC Boot Architecture Flags (§5.2.9.3).
    static let bootArchNoVGA: UInt16 = 1 << 2
    static let bootArchNoMSI: UInt16 = 1 << 3
    static let bootArchNoASPM: UInt16 = 1 << 4
    static let bootArchNoCMOSRTC: UInt16 = 1 << 5
    /// Nothing here is VGA, PCI or a CMOS clock: no VGA probing, no MSI or PCIe ASPM to
    /// enable (Firecracker sets these three), and no CMOS RTC, so Linux does not register
    /// rtc_cmos; wall-clock time comes from kvm-clock. LEGACY_DEVICES and 8042 stay clear:
    /// the UARTs are declared in the DSDT instead, and the i8042 is only a reset path, so
    /// Linux skips probing a keyboard controller.
    static let iapcBootArch = bootArchNoVGA | bootArchNoMSI | bootArchNoASPM | bootArchNoCMOSRTC

    static func make(dsdtAddress: UInt64, config: ACPIConfiguration, identity: TableIdentity) -> [UInt8] {
        var t = ByteWriter(zeros: length)
        // DSDT is the 32-bit copy of X_DSDT; ACPICA accepts both when they agree.
        if dsdtAddress <= UInt64(UInt32.max) {
            t.put(u32: UInt32(dsdtAddress), at: 40)
        }
        t.put(u16: iapcBootArch, at: 109)
        t.put(u32: flags, at: 112)
        t.put(bytes: ioPortRegister(config.resetPort), at: 116)  // RESET_REG
        t.put(u8: config.resetValue, at: 128)  // RESET_VALUE
        t.put(u8: minorVersion, at: 131)
        t.put(u64: dsdtAddress, at: 140)  // X_DSDT
        t.put(bytes: ioPortRegister(config.sleepControlPort), at: 244)  // SLEEP_CONTROL_REG
        t.put(bytes: ioPortRegister(config.sleepStatusPort), at: 256)  // SLEEP_STATUS_REG
        t.put(bytes: identity.hypervisorVendorID, at: 268)
        TableHeader.finish(&t, signature: "FACP", revision: revision, identity: identity)
        return t.bytes
    }
}

/// Multiple APIC Description Table (ACPI 6.5 §5.2.12).
enum MADT {
    /// Revision 5 = ACPI 6.3, matching the FADT.
    static let revision: UInt8 = 5

    static func length(vcpuCount: Int) -> Int { TableHeader.length + 8 + 8 * vcpuCount + 12 }

    static func make(config: ACPIConfiguration, identity: TableIdentity) -> [UInt8] {
        var t = ByteWriter(zeros: TableHeader.length)
        t.append(u32: config.localAPICAddress)
        // Flags: PCAT_COMPAT = 0, as in Firecracker. The guest is not told of dual 8259s:
        // hardware-reduced Linux installs no legacy PIC, and newer kernels would skip
        // probing for one when this bit is set.
        t.append(u32: 0)
        for cpu in 0..<config.vcpuCount {
            // Processor Local APIC (§5.2.12.2): type 0, length 8, UID, APIC id, flags.
            t.append(u8: 0)
            t.append(u8: 8)
            t.append(u8: UInt8(cpu))  // ACPI Processor UID
            t.append(u8: UInt8(cpu))  // APIC ID
            t.append(u32: 1)  // Enabled
        }
        // I/O APIC (§5.2.12.3): type 1, length 12, id, reserved, address, GSI base 0.
        // No Interrupt Source Overrides: ISA IRQ n is GSI n is I/O APIC pin n, as in KVM's
        // default routing.
        t.append(u8: 1)
        t.append(u8: 12)
        t.append(u8: config.ioAPICID)
        t.append(u8: 0)
        t.append(u32: config.ioAPICAddress)
        t.append(u32: 0)
        TableHeader.finish(&t, signature: "APIC", revision: revision, identity: identity)
        return t.bytes
    }
}

/// Differentiated System Description Table (ACPI 6.5 §5.2.11.1): the header, then AML.
enum DSDT {
    /// Revision 2 makes AML integers 64-bit.
    static let revision: UInt8 = 2
    /// Virtio-mmio device names are V000...VFFF.
    static let maxDevices = 0x1000

    static func make(config: ACPIConfiguration, identity: TableIdentity) throws(ACPIError) -> [UInt8] {
        var t = ByteWriter(zeros: TableHeader.length)
        t.append(bytes: try definitionBlock(config.virtioMMIO, serialPorts: config.serialPorts))
        TableHeader.finish(&t, signature: "DSDT", revision: revision, identity: identity)
        return t.bytes
    }

    /// The AML body. Names sit in the root scope, so `_S5_` here is `\_S5_`.
    static func definitionBlock(_ devices: [VirtioMMIODescriptor],
                                serialPorts: [SerialPortDescriptor] = []) throws(ACPIError) -> [UInt8] {
        // \_S5_ (ACPI 6.5 §7.4.2): ACPICA reads SLP_TYPa from the first integer and SLP_TYPb
        // from the second; the other two are reserved. Only SLP_TYPa matters when hardware-
        // reduced.
        let sleepType = UInt64(ACPIBuilder.s5SleepType)
        var body = try AML.name("_S5_", AML.package([sleepType, 0, 0, 0].map(AML.integer)))
        if !devices.isEmpty || !serialPorts.isEmpty {
            var terms: [[UInt8]] = []
            for (index, port) in serialPorts.enumerated() {
                terms.append(try serialDevice(index: index, port))
            }
            for (index, device) in devices.enumerated() {
                terms.append(try virtioDevice(index: index, device))
            }
            body += try AML.scope("_SB_", terms)
        }
        return body
    }

    /// Device(COMn) with _HID PNP0501 (16550-compatible UART), its I/O window and an
    /// edge-triggered, active-high ISA interrupt, as Firecracker describes its serial ports.
    static func serialDevice(index: Int, _ port: SerialPortDescriptor) throws(ACPIError) -> [UInt8] {
        let resources = try AML.resourceTemplate([
            AML.ioPort(base: port.port, length: 8),
            AML.extendedInterrupt([port.gsi], trigger: .edge, polarity: .activeHigh, sharing: .exclusive),
        ])
        return try AML.device("COM\(index + 1)", [
            AML.name("_HID", AML.eisaID("PNP0501")),
            AML.name("_UID", AML.integer(UInt64(index))),
            AML.name("_CRS", resources),
        ])
    }

    /// "V" and the index as three capital hex digits: V000, V001, ... VFFF.
    static func deviceName(_ index: Int) -> String {
        let digits = hex(index)
        return "V" + String(repeating: "0", count: max(0, 3 - digits.count)) + digits
    }

    /// Device(Vnnn) with _HID "LNRO0005" (Linux's virtio-mmio ACPI id), _UID, _CCA = 1
    /// (cache-coherent DMA) and a _CRS of the register window and an edge-triggered,
    /// active-high, exclusive interrupt: KVM's irqfd delivers an edge.
    /// The caller has checked that the window fits in 32 bits.
    static func virtioDevice(index: Int, _ device: VirtioMMIODescriptor) throws(ACPIError) -> [UInt8] {
        let resources = try AML.resourceTemplate([
            AML.memory32Fixed(base: UInt32(device.base), length: UInt32(device.size), access: .readWrite),
            AML.extendedInterrupt([device.gsi], trigger: .edge, polarity: .activeHigh, sharing: .exclusive),
        ])
        return try AML.device(deviceName(index), [
            AML.name("_HID", AML.string("LNRO0005")),
            AML.name("_UID", AML.integer(UInt64(index))),
            AML.name("_CCA", AML.integer(1)),
            AML.name("_CRS", resources),
        ])
    }
}
