/// The zero page (struct boot_params, arch/x86/include/uapi/asm/bootparam.h) for the 64-bit
/// boot protocol: the kernel's own setup header, plus what the loader fills in.
public struct BootParams: Sendable {
    enum Offset {
        static let acpiRSDPAddress = 0x070
        static let extRamdiskImage = 0x0c0
        static let extRamdiskSize = 0x0c4
        static let extCmdLinePtr = 0x0c8
        static let e820Entries = 0x1e8
        static let vidMode = 0x1fa
        static let typeOfLoader = 0x210
        static let loadflags = 0x211
        static let ramdiskImage = 0x218
        static let ramdiskSize = 0x21c
        static let heapEndPtr = 0x224
        static let cmdLinePtr = 0x228
        static let e820Table = 0x2d0
    }
    public static let size = 4096
    public static let maxE820Entries = 128

    public var commandLineAddress: UInt64
    public var initrd: (address: UInt64, size: UInt64)?
    public var e820: [E820Entry]
    public var rsdpAddress: UInt64?

    public init(commandLineAddress: UInt64, initrd: (address: UInt64, size: UInt64)?, e820: [E820Entry], rsdpAddress: UInt64?) {
        self.commandLineAddress = commandLineAddress
        self.initrd = initrd
        self.e820 = e820
        self.rsdpAddress = rsdpAddress
    }

    /// The 4 KiB zero page for `kernel`.
    public func encode(for kernel: BzImage) -> [UInt8] {
        var page = [UInt8](repeating: 0, count: Self.size)
        // boot.rst: copy the setup header from the image into the zero page at the same offset.
        for (i, b) in kernel.setupHeader.enumerated() { page[BzImage.Offset.setupSects + i] = b }
        func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { page[offset + i] = b } }
        }
        put(UInt16(0xffff), Offset.vidMode)           // "normal" video mode
        put(UInt8(0xff), Offset.typeOfLoader)         // undefined boot loader
        // LOADED_HIGH stays set; CAN_USE_HEAP (bit 7) with a heap end for the (unused) 16-bit setup.
        page[Offset.loadflags] |= 0x80
        put(UInt16(0xfe00), Offset.heapEndPtr)
        put(UInt32(truncatingIfNeeded: commandLineAddress), Offset.cmdLinePtr)
        put(UInt32(truncatingIfNeeded: commandLineAddress >> 32), Offset.extCmdLinePtr)
        if let initrd {
            put(UInt32(truncatingIfNeeded: initrd.address), Offset.ramdiskImage)
            put(UInt32(truncatingIfNeeded: initrd.size), Offset.ramdiskSize)
            put(UInt32(truncatingIfNeeded: initrd.address >> 32), Offset.extRamdiskImage)
            put(UInt32(truncatingIfNeeded: initrd.size >> 32), Offset.extRamdiskSize)
        }
        // Protocol 2.14: where the RSDP is, so the kernel need not scan the BIOS area.
        if let rsdpAddress { put(rsdpAddress, Offset.acpiRSDPAddress) }
        let entries = e820.prefix(Self.maxE820Entries)
        put(UInt8(entries.count), Offset.e820Entries)
        for (i, e) in entries.enumerated() {
            let o = Offset.e820Table + i * 20
            put(e.address, o)
            put(e.size, o + 8)
            put(e.kind.rawValue, o + 16)
        }
        return page
    }
}
