/// One virtio-mmio transport as the guest should find it in the DSDT.
public struct VirtioMMIODescriptor: Sendable, Equatable {
    /// Guest-physical base of the register window; must lie below 4 GiB.
    public var base: UInt64
    /// Size of the register window in bytes.
    public var size: UInt64
    /// Global system interrupt: the I/O APIC pin (GSI base is 0).
    public var gsi: UInt32

    public init(base: UInt64, size: UInt64, gsi: UInt32) {
        self.base = base
        self.size = size
        self.gsi = gsi
    }
}

/// What the guest is told about the machine. `ACPIBuilder.build` validates it.
/// A legacy 16550 UART: its 8-port I/O window and its interrupt.
public struct SerialPortDescriptor: Sendable, Equatable {
    public var port: UInt16
    public var gsi: UInt32
    public init(port: UInt16, gsi: UInt32) {
        self.port = port
        self.gsi = gsi
    }
}

public struct ACPIConfiguration: Sendable {
    /// Number of vCPUs, 1...255. vCPU i gets local APIC id i and ACPI processor UID i.
    public var vcpuCount: Int
    /// Local APIC base in the MADT (ACPI 6.5 §5.2.12).
    public var localAPICAddress: UInt32 = 0xFEE0_0000
    /// I/O APIC base in the MADT's I/O APIC structure (ACPI 6.5 §5.2.12.3).
    public var ioAPICAddress: UInt32 = 0xFEC0_0000
    /// I/O APIC id. Defaults to `vcpuCount`, the first id after the vCPUs' ids.
    public var ioAPICID: UInt8
    /// FADT SLEEP_CONTROL_REG, an 8-bit I/O port (ACPI 6.5 §4.8.3.7). To power off, Linux
    /// writes `ACPIBuilder.s5SleepType << 2 | 0x20` (SLP_TYP, SLP_EN) = 0x34 here.
    public var sleepControlPort: UInt16 = 0x600
    /// FADT SLEEP_STATUS_REG, an 8-bit I/O port (ACPI 6.5 §4.8.3.7). Linux writes WAK_STS
    /// (0x80) here first, then polls it for WAK_STS after the sleep write.
    public var sleepStatusPort: UInt16 = 0x601
    /// FADT RESET_REG, an 8-bit I/O port; the guest writes `resetValue` there to reboot.
    public var resetPort: UInt16 = 0x604
    /// FADT RESET_VALUE.
    public var resetValue: UInt8 = 0x01
    /// The virtio-mmio devices, declared in the DSDT as \_SB_.V000, \_SB_.V001, ...
    public var virtioMMIO: [VirtioMMIODescriptor] = []
    /// 16550 UARTs to describe as PNP0501 devices. Needed on a hardware-reduced machine: there
    /// is no legacy PIC, so Linux only wires an ISA IRQ for a UART that ACPI declares.
    public var serialPorts: [SerialPortDescriptor] = []
    /// OEMID of every table header, at most 6 characters (padded with spaces).
    public var oemID: String = "MOMIN "
    /// OEM Table ID of every table header, at most 8 characters.
    public var oemTableID: String = "MOMINVMM"
    /// OEM Revision of every table header.
    public var oemRevision: UInt32 = 1
    /// Creator ID of every table header, at most 4 characters.
    public var creatorID: String = "MOMI"
    /// Creator Revision of every table header.
    public var creatorRevision: UInt32 = 1
    /// FADT Hypervisor Vendor Identity (ACPI 6.5 §5.2.9), at most 8 characters.
    public var hypervisorVendorID: String = "MOMINVMM"

    public init(vcpuCount: Int, virtioMMIO: [VirtioMMIODescriptor] = []) {
        self.vcpuCount = vcpuCount
        self.ioAPICID = UInt8(clamping: vcpuCount)
        self.virtioMMIO = virtioMMIO
    }
}
