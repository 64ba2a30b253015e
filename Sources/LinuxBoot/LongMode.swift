/// What a vCPU must hold to enter Linux's 64-bit entry point (boot.rst, "64-bit BOOT PROTOCOL"):
/// long mode with paging on, an identity map covering the kernel, zero page and command line,
/// flat __BOOT_CS (0x10) / __BOOT_DS (0x18) segments, %rsi = zero page.
public enum LongMode {
    /// A GDT descriptor from its access/flags word, base and limit (Intel SDM vol. 3 §3.4.5).
    /// `flags` packs the access byte in bits 0–7 and G/D/L/AVL in bits 12–15.
    public static func descriptor(flags: UInt16, base: UInt32, limit: UInt32) -> UInt64 {
        let b = UInt64(base), l = UInt64(limit), f = UInt64(flags)
        return (b & 0xff00_0000) << 32 | (b & 0x00ff_ffff) << 16 | (l & 0x0000_ffff)
            | (l & 0x000f_0000) << 32 | (f & 0xf0ff) << 40
    }

    /// GDT: null, null, __BOOT_CS (64-bit code), __BOOT_DS (data), a TSS (KVM wants a usable TR).
    public static let gdt: [UInt64] = [
        0,
        0,
        descriptor(flags: 0xa09b, base: 0, limit: 0xfffff), // G, L, P, code exec/read accessed
        descriptor(flags: 0xc093, base: 0, limit: 0xfffff), // G, D, P, data read/write accessed
        descriptor(flags: 0x808b, base: 0, limit: 0xfffff), // G, P, busy 64-bit TSS
    ]
    public static let codeSelector: UInt16 = 0x10
    public static let dataSelector: UInt16 = 0x18
    public static let tssSelector: UInt16 = 0x20

    /// The segment-cache view of descriptor `index` of `gdt`, as KVM_SET_SREGS takes it.
    public static func segment(gdtIndex index: Int) -> SegmentState {
        let d = gdt[index]
        let flags = UInt16(truncatingIfNeeded: d >> 40) & 0xf0ff
        let limitRaw = UInt32(truncatingIfNeeded: (d & 0xffff) | ((d >> 32) & 0xf_0000))
        let granular = flags & 0x8000 != 0
        return SegmentState(
            base: UInt64((d >> 16) & 0xff_ffff | (d >> 32) & 0xff00_0000),
            limit: granular ? (limitRaw << 12) | 0xfff : limitRaw,
            selector: UInt16(index * 8),
            type: UInt8(flags & 0xf),
            present: flags & 0x80 != 0,
            dpl: UInt8((flags >> 5) & 0x3),
            defaultSize: flags & 0x4000 != 0,
            codeOrData: flags & 0x10 != 0,
            long: flags & 0x2000 != 0,
            granularity: granular)
    }

    /// Identity-mapping page tables for the first `Layout.identityMappedGiB` GiB with 2 MiB
    /// pages: (guest address, little-endian 4 KiB page) pairs.
    public static func identityPageTables() -> [(address: UInt64, page: [UInt8])] {
        let present: UInt64 = 0x1, writable: UInt64 = 0x2, largePage: UInt64 = 0x80
        var pml4 = [UInt64](repeating: 0, count: 512)
        pml4[0] = Layout.pdpt | present | writable
        var pdpt = [UInt64](repeating: 0, count: 512)
        var tables = [(address: UInt64, page: [UInt8])]()
        for g in 0..<Int(Layout.identityMappedGiB) {
            let pdAddress = Layout.pageDirectories + UInt64(g) * 0x1000
            pdpt[g] = pdAddress | present | writable
            let pd = (0..<512).map { i in
                (UInt64(g) << 30 | UInt64(i) << 21) | present | writable | largePage
            }
            tables.append((pdAddress, littleEndianBytes(pd)))
        }
        return [(Layout.pml4, littleEndianBytes(pml4)), (Layout.pdpt, littleEndianBytes(pdpt))] + tables
    }

    static func littleEndianBytes(_ words: [UInt64]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(words.count * 8)
        for w in words { withUnsafeBytes(of: w.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    // Control-register bits (Intel SDM vol. 3 §2.5; AMD APM vol. 2 §3.1).
    public static let cr0ProtectionEnable: UInt64 = 1 << 0
    public static let cr0ExtensionType: UInt64 = 1 << 4
    public static let cr0Paging: UInt64 = 1 << 31
    public static let cr4PhysicalAddressExtension: UInt64 = 1 << 5
    public static let eferLongModeEnable: UInt64 = 1 << 8
    public static let eferLongModeActive: UInt64 = 1 << 10
}

/// A segment register's state, independent of KVM's struct.
public struct SegmentState: Equatable, Sendable {
    public var base: UInt64
    public var limit: UInt32
    public var selector: UInt16
    public var type: UInt8
    public var present: Bool
    public var dpl: UInt8
    public var defaultSize: Bool
    public var codeOrData: Bool
    public var long: Bool
    public var granularity: Bool
}

/// Everything the boot vCPU needs at the kernel's 64-bit entry.
public struct BootCPUState: Equatable, Sendable {
    public var rip: UInt64
    public var rsi: UInt64
    public var rsp: UInt64
    public var rflags: UInt64 = 0x2
    public var cr0: UInt64 = LongMode.cr0ProtectionEnable | LongMode.cr0ExtensionType | LongMode.cr0Paging
    public var cr3: UInt64 = Layout.pml4
    public var cr4: UInt64 = LongMode.cr4PhysicalAddressExtension
    public var efer: UInt64 = LongMode.eferLongModeEnable | LongMode.eferLongModeActive
    public var code = LongMode.segment(gdtIndex: 2)
    public var data = LongMode.segment(gdtIndex: 3)
    public var tss = LongMode.segment(gdtIndex: 4)
    public var gdt = (base: Layout.gdt, limit: UInt16(LongMode.gdt.count * 8 - 1))
    public var idt = (base: Layout.idt, limit: UInt16(7))

    public static func == (a: Self, b: Self) -> Bool {
        a.rip == b.rip && a.rsi == b.rsi && a.rsp == b.rsp && a.rflags == b.rflags && a.cr0 == b.cr0
            && a.cr3 == b.cr3 && a.cr4 == b.cr4 && a.efer == b.efer && a.code == b.code && a.data == b.data
            && a.tss == b.tss && a.gdt == b.gdt && a.idt == b.idt
    }
}
