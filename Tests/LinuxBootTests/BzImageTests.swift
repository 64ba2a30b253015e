import Testing
@testable import LinuxBoot

/// A synthetic bzImage: a setup header with the fields the loader reads, and a payload whose
/// bytes count up so loads can be checked byte for byte.
func makeBzImage(setupSects: UInt8 = 4, version: UInt16 = 0x020f, xloadflags: UInt16 = 0x7f,
                 payload: Int = 8192, initSize: UInt32 = 0x100_0000, prefAddress: UInt64 = 0x100_0000,
                 cmdlineSize: UInt32 = 2047, initrdAddrMax: UInt32 = 0x7fff_ffff) -> [UInt8] {
    let sects = setupSects == 0 ? 4 : Int(setupSects)
    var b = [UInt8](repeating: 0, count: (sects + 1) * 512 + payload)
    func put<T: FixedWidthInteger>(_ v: T, _ o: Int) {
        withUnsafeBytes(of: v.littleEndian) { for (i, x) in $0.enumerated() { b[o + i] = x } }
    }
    put(setupSects, 0x1f1)
    put(UInt16(0xAA55), 0x1fe)
    put(UInt8(0xeb), 0x200)           // jmp short
    put(UInt8(0x66), 0x201)           // header ends at 0x268
    put(UInt32(0x5372_6448), 0x202)   // "HdrS"
    put(version, 0x206)
    put(UInt8(0x01), 0x211)           // LOADED_HIGH
    put(initrdAddrMax, 0x22c)
    put(UInt32(0x20_0000), 0x230)
    put(UInt8(1), 0x234)
    put(xloadflags, 0x236)
    put(cmdlineSize, 0x238)
    put(prefAddress, 0x258)
    put(initSize, 0x260)
    for i in 0..<payload { b[(sects + 1) * 512 + i] = UInt8(truncatingIfNeeded: i) }
    return b
}

@Suite struct BzImageTests {
    @Test func parsesTheSetupHeader() throws {
        let image = try BzImage(makeBzImage(setupSects: 4, payload: 4096, initSize: 0x337_8000))
        #expect(image.protocolVersion == 0x020f)
        #expect(image.payloadOffset == 5 * 512)
        #expect(image.payloadSize == 4096)
        #expect(image.headerEnd == 0x268)
        #expect(image.initSize == 0x337_8000)
        #expect(image.preferredAddress == 0x100_0000)
        #expect(image.commandLineMax == 2047)
        #expect(image.has64BitEntry)
        #expect(image.setupHeader.count == 0x268 - 0x1f1)
    }

    @Test func zeroSetupSectorsMeansFour() throws {
        #expect(try BzImage(makeBzImage(setupSects: 0)).payloadOffset == 5 * 512)
        #expect(try BzImage(makeBzImage(setupSects: 30)).payloadOffset == 31 * 512)
    }

    @Test func rejectsWhatIsNotABzImage() {
        var noSignature = makeBzImage()
        noSignature[0x1fe] = 0
        #expect(throws: BootError.notBzImage("no 0xAA55 boot signature at 0x1fe")) { try BzImage(noSignature) }
        var noMagic = makeBzImage()
        noMagic[0x202] = UInt8(ascii: "X")
        #expect(throws: BootError.notBzImage("no \"HdrS\" magic at 0x202")) { try BzImage(noMagic) }
        #expect(throws: BootError.self) { try BzImage([UInt8](repeating: 0, count: 100)) }
        var zImage = makeBzImage()
        zImage[0x211] = 0
        #expect(throws: BootError.notBzImage("LOADED_HIGH is clear (a zImage)")) { try BzImage(zImage) }
        var truncated = makeBzImage(setupSects: 4, payload: 1)
        truncated.removeLast(2)
        #expect(throws: BootError.notBzImage("setup (2560 bytes) covers the whole file")) { try BzImage(truncated) }
    }

    @Test func rejectsOldProtocolsAndKernelsWithout64BitEntry() {
        #expect(throws: BootError.unsupportedProtocol(0x020b)) { try BzImage(makeBzImage(version: 0x020b)) }
        #expect(throws: BootError.no64BitEntry) { try BzImage(makeBzImage(xloadflags: 0x7e)) }
    }
}
