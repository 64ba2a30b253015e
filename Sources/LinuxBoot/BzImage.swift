/// A parsed bzImage (Linux x86 boot protocol, Documentation/arch/x86/boot.rst).
/// Only what the 64-bit entry path needs is kept: the setup header, to copy into the zero page,
/// and the protected-mode payload, to load at 1 MiB.
public struct BzImage: Sendable {
    /// Byte offsets in the file (and in the zero page) of setup-header fields (boot.rst, "The real-mode kernel header").
    enum Offset {
        static let setupSects = 0x1f1
        static let bootFlag = 0x1fe
        static let jump = 0x200
        static let headerMagic = 0x202
        static let version = 0x206
        static let loadflags = 0x211
        static let initrdAddrMax = 0x22c
        static let kernelAlignment = 0x230
        static let relocatableKernel = 0x234
        static let xloadflags = 0x236
        static let cmdlineSize = 0x238
        static let prefAddress = 0x258
        static let initSize = 0x260
    }

    /// The start of the file: at least the setup header (the payload is loaded from the file).
    let header: [UInt8]
    /// Size of the whole file.
    public let fileSize: Int
    /// Boot protocol version, e.g. 0x020f for 2.15.
    public let protocolVersion: UInt16
    /// File offset of the protected-mode payload: (setup_sects + 1) × 512.
    public let payloadOffset: Int
    /// First byte past the setup header: 0x202 + the jump's displacement byte.
    public let headerEnd: Int
    public let initrdAddressMax: UInt32
    public let kernelAlignment: UInt32
    public let relocatable: Bool
    public let xloadflags: UInt16
    /// Longest command line the kernel accepts, without the terminating NUL.
    public let commandLineMax: UInt32
    public let preferredAddress: UInt64
    /// Memory the kernel needs, from its load address, to decompress and start.
    public let initSize: UInt32

    public var payloadSize: Int { fileSize - payloadOffset }
    /// XLF_KERNEL_64: the kernel has the 64-bit entry point at load address + 0x200.
    public var has64BitEntry: Bool { xloadflags & 0x1 != 0 }

    /// How much of the file the header needs: the setup header ends well before this.
    public static let headerReadSize = 0x290

    /// Parses a whole image held in memory.
    public init(_ bytes: [UInt8]) throws(BootError) {
        try self.init(header: Array(bytes.prefix(Self.headerReadSize)), fileSize: bytes.count)
    }

    /// Parses the first `headerReadSize` bytes (or all, if the file is shorter) of a file of
    /// `fileSize` bytes.
    public init(header bytes: [UInt8], fileSize: Int) throws(BootError) {
        guard bytes.count >= 0x270, fileSize >= bytes.count else {
            throw .notBzImage("file is \(fileSize) bytes, too short for a setup header")
        }
        func u8(_ o: Int) -> UInt8 { bytes[o] }
        func u16(_ o: Int) -> UInt16 { UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8 }
        func u32(_ o: Int) -> UInt32 { UInt32(u16(o)) | UInt32(u16(o + 2)) << 16 }
        func u64(_ o: Int) -> UInt64 { UInt64(u32(o)) | UInt64(u32(o + 4)) << 32 }

        guard u16(Offset.bootFlag) == 0xAA55 else { throw .notBzImage("no 0xAA55 boot signature at 0x1fe") }
        guard u32(Offset.headerMagic) == 0x5372_6448 else { throw .notBzImage("no \"HdrS\" magic at 0x202") }
        let version = u16(Offset.version)
        // 2.12 added xloadflags, which says whether the 64-bit entry point exists.
        guard version >= 0x020c else { throw .unsupportedProtocol(version) }
        guard u8(Offset.loadflags) & 0x1 != 0 else { throw .notBzImage("LOADED_HIGH is clear (a zImage)") }
        let sects = u8(Offset.setupSects) == 0 ? 4 : Int(u8(Offset.setupSects))
        let payloadOffset = (sects + 1) * 512
        guard payloadOffset < fileSize else { throw .notBzImage("setup (\(payloadOffset) bytes) covers the whole file") }
        let headerEnd = 0x202 + Int(u8(Offset.jump + 1))
        guard headerEnd <= payloadOffset, headerEnd <= 0x290 else { throw .notBzImage("setup header length is implausible") }

        self.header = bytes
        self.fileSize = fileSize
        protocolVersion = version
        self.payloadOffset = payloadOffset
        self.headerEnd = headerEnd
        initrdAddressMax = u32(Offset.initrdAddrMax)
        kernelAlignment = u32(Offset.kernelAlignment)
        relocatable = u8(Offset.relocatableKernel) != 0
        xloadflags = u16(Offset.xloadflags)
        commandLineMax = u32(Offset.cmdlineSize)
        preferredAddress = u64(Offset.prefAddress)
        initSize = u32(Offset.initSize)
        guard has64BitEntry else { throw .no64BitEntry }
    }

    /// The setup header as it appears in the file, from 0x1f1 to its end.
    public var setupHeader: ArraySlice<UInt8> { header[Offset.setupSects..<headerEnd] }
}
