/// The guest-physical map of a MominAI x86-64 microVM. Low memory follows the PC conventions the
/// Linux boot protocol expects; the 3–4 GiB hole holds device MMIO and the interrupt controllers.
public enum Layout {
    /// GDT and IDT for the 64-bit entry (boot.rst: "64-bit BOOT PROTOCOL").
    public static let gdt: UInt64 = 0x500
    public static let idt: UInt64 = 0x520
    /// The zero page (struct boot_params); %rsi points here at entry.
    public static let zeroPage: UInt64 = 0x7000
    /// Initial stack; the decompressor sets up its own immediately.
    public static let bootStack: UInt64 = 0x8ff0
    /// Identity page tables: PML4, one PDPT, four page directories of 2 MiB pages (0–4 GiB).
    public static let pml4: UInt64 = 0x9000
    public static let pdpt: UInt64 = 0xa000
    public static let pageDirectories: UInt64 = 0xb000
    public static let identityMappedGiB: UInt64 = 4
    /// The kernel command line (NUL-terminated).
    public static let commandLine: UInt64 = 0x20000
    public static let commandLineCapacity: Int = 0x10000
    /// End of conventional low RAM (start of the EBDA by PC convention).
    public static let lowRAMEnd: UInt64 = 0x9fc00
    /// ACPI tables, in the BIOS area the kernel scans for the RSDP (ACPI 6.x §5.2.5.1).
    public static let acpiTables: UInt64 = 0xe0000
    public static let acpiTablesEnd: UInt64 = 0x100000
    /// Where the protected-mode kernel is loaded (boot.rst: code32_start's traditional value).
    public static let kernelLoad: UInt64 = 0x100000
    /// RAM above this is placed at 4 GiB, leaving a hole for MMIO below 4 GiB.
    public static let mmioHoleStart: UInt64 = 0xc000_0000
    public static let fourGiB: UInt64 = 0x1_0000_0000
    /// virtio-mmio and other MMIO devices are allocated upward from here.
    public static let deviceMMIOStart: UInt64 = 0xd000_0000
    public static let ioAPIC: UInt64 = 0xfec0_0000
    public static let localAPIC: UInt64 = 0xfee0_0000
    /// Three pages KVM needs for the real-mode TSS on Intel, and one for the EPT identity map.
    public static let kvmIdentityMap: UInt64 = 0xfffb_c000
    public static let kvmTSS: UInt64 = 0xfffb_d000

    /// The RAM regions for `bytes` of guest memory: below the hole, then the rest from 4 GiB.
    public static func ramRegions(bytes: UInt64) -> [(guestAddress: UInt64, size: UInt64)] {
        if bytes <= mmioHoleStart { return [(0, bytes)] }
        return [(0, mmioHoleStart), (fourGiB, bytes - mmioHoleStart)]
    }
}

/// One entry of the BIOS e820 memory map (boot_params.e820_table; struct boot_e820_entry).
public struct E820Entry: Equatable, Sendable {
    public enum Kind: UInt32, Sendable { case ram = 1, reserved = 2, acpi = 3 }
    public var address: UInt64
    public var size: UInt64
    public var kind: Kind
    public init(address: UInt64, size: UInt64, kind: Kind) { self.address = address; self.size = size; self.kind = kind }

    /// The map for a guest with `bytes` of RAM laid out by `Layout.ramRegions`: low RAM, the
    /// BIOS area holding the ACPI tables as reserved, then RAM from 1 MiB (and from 4 GiB).
    public static func map(ramBytes bytes: UInt64) -> [E820Entry] {
        var entries = [
            E820Entry(address: 0, size: Layout.lowRAMEnd, kind: .ram),
            E820Entry(address: Layout.acpiTables, size: Layout.acpiTablesEnd - Layout.acpiTables, kind: .reserved),
        ]
        for r in Layout.ramRegions(bytes: bytes) {
            let start = max(r.guestAddress, Layout.kernelLoad)
            let end = r.guestAddress + r.size
            if end > start { entries.append(E820Entry(address: start, size: end - start, kind: .ram)) }
        }
        return entries
    }
}
