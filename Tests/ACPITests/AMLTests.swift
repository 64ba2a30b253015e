import Testing
@testable import ACPI

/// Decodes a PkgLength the way the AML parser does (ACPI 6.5 §20.2.4); the tests' own reading.
private func decodePkgLength(_ bytes: [UInt8]) -> (value: Int, size: Int) {
    let following = Int(bytes[0] >> 6)
    if following == 0 { return (Int(bytes[0] & 0x3F), 1) }
    var value = Int(bytes[0] & 0x0F)
    for i in 0..<following { value |= Int(bytes[1 + i]) << (4 + 8 * i) }
    return (value, 1 + following)
}

/// Golden bytes below come from iasl 20200925 (Debian 12 acpica-tools) compiling the ASL in
/// each test's comment.
@Suite struct AMLTests {
    @Test func pkgLengthValueBoundaries() throws {
        #expect(try AML.pkgLength(value: 0) == [0x00])
        #expect(try AML.pkgLength(value: 63) == [0x3F])
        #expect(try AML.pkgLength(value: 64) == [0x40, 0x04])
        #expect(try AML.pkgLength(value: 4095) == [0x4F, 0xFF])
        #expect(try AML.pkgLength(value: 4096) == [0x80, 0x00, 0x01])
        #expect(try AML.pkgLength(value: 0xF_FFFF) == [0x8F, 0xFF, 0xFF])
        #expect(try AML.pkgLength(value: 0x10_0000) == [0xC0, 0x00, 0x00, 0x01])
        #expect(try AML.pkgLength(value: AML.maxPkgLength) == [0xCF, 0xFF, 0xFF, 0xFF])
        #expect(throws: ACPIError.packageTooLong(AML.maxPkgLength + 1)) {
            try AML.pkgLength(value: AML.maxPkgLength + 1)
        }
    }

    /// The encoded length includes the PkgLength bytes, so the switch to a longer form happens
    /// one or more bytes before the value boundary.
    @Test func pkgLengthForBodyCountsItself() throws {
        #expect(try AML.pkgLength(forBody: 62) == [0x3F])  // 62 + 1 = 63
        #expect(try AML.pkgLength(forBody: 63) == [0x41, 0x04])  // 63 + 2 = 65
        #expect(try AML.pkgLength(forBody: 4093) == [0x4F, 0xFF])  // 4093 + 2 = 4095
        #expect(try AML.pkgLength(forBody: 4094) == [0x81, 0x00, 0x01])  // 4094 + 3 = 4097
        #expect(try AML.pkgLength(forBody: 0xF_FFFC) == [0x8F, 0xFF, 0xFF])
        #expect(try AML.pkgLength(forBody: 0xF_FFFD) == [0xC1, 0x00, 0x00, 0x01])
    }

    @Test(arguments: [0, 1, 61, 62, 63, 64, 65, 4091, 4092, 4093, 4094, 4095, 4096, 0xF_FFFB, 0xF_FFFC, 0xF_FFFD, 0xF_FFFE, 0xFF_FFFF])
    func pkgLengthRoundTrips(body: Int) throws {
        let encoded = try AML.pkgLength(forBody: body)
        let (value, size) = decodePkgLength(encoded)
        #expect(size == encoded.count)
        #expect(value == body + encoded.count)
        // Never longer than needed: one byte less could not have held it.
        if encoded.count > 1 {
            let shorter = try AML.pkgLength(value: body + encoded.count - 1)
            #expect(shorter.count >= encoded.count)
        }
    }

    @Test func nameSegs() throws {
        #expect(try AML.nameSeg("V000") == Array("V000".utf8))
        #expect(try AML.nameSeg("_S5") == Array("_S5_".utf8))
        for bad in ["", "0ABC", "abcd", "ABCDE", "A-BC"] {
            #expect(throws: ACPIError.invalidName(bad)) { try AML.nameSeg(bad) }
        }
    }

    @Test func nameStrings() throws {
        // Name (\_SB_.ABCD, ...)
        #expect(try AML.nameString("\\_SB_.ABCD") == hexBytes("5c2e 5f53425f 41424344"))
        // Name (\_SB_.PCI0.BAR_, ...)
        #expect(try AML.nameString("\\_SB_.PCI0.BAR_") == hexBytes("5c2f03 5f53425f 50434930 4241525f"))
        // Scope (\_SB_) { Name (^ABC0, 1) }
        #expect(try AML.nameString("^ABC0") == hexBytes("5e 41424330"))
        #expect(try AML.nameString("_SB_") == Array("_SB_".utf8))
        #expect(try AML.nameString("\\") == [0x5C, 0x00])
        #expect(throws: ACPIError.invalidName("_SB_..X")) { try AML.nameString("_SB_..X") }
        #expect(throws: ACPIError.invalidName("")) { try AML.nameString("") }
    }

    @Test func integersPickTheSmallestEncoding() {
        #expect(AML.integer(0) == [0x00])
        #expect(AML.integer(1) == [0x01])
        #expect(AML.integer(5) == [0x0A, 0x05])
        #expect(AML.integer(0xFF) == hexBytes("0aff"))
        #expect(AML.integer(0x100) == hexBytes("0b0001"))
        #expect(AML.integer(0xFFFF) == hexBytes("0bffff"))
        #expect(AML.integer(0x1_0000) == hexBytes("0c00000100"))
        #expect(AML.integer(0xFFFF_FFFF) == hexBytes("0cffffffff"))
        #expect(AML.integer(0x1_0000_0000) == hexBytes("0e0000000001000000"))
        #expect(AML.integer(.max) == [0xFF])  // Ones
    }

    @Test func stringsBuffersPackages() throws {
        #expect(try AML.string("hi") == hexBytes("0d686900"))
        #expect(throws: ACPIError.invalidString("a\u{0}b")) { try AML.string("a\u{0}b") }
        #expect(throws: ACPIError.invalidString("é")) { try AML.string("é") }
        // Buffer () { 1, 2, 3 }
        #expect(try AML.buffer([1, 2, 3]) == hexBytes("1106 0a03 010203"))
        // Package () { "hi", 0x1234 }
        #expect(try AML.package([AML.string("hi"), AML.integer(0x1234)]) == hexBytes("1209 02 0d686900 0b3412"))
        let tooMany = [[UInt8]](repeating: [0], count: 256)
        #expect(throws: ACPIError.tooManyPackageElements(256)) { try AML.package(tooMany) }
    }

    @Test func eisaIDs() throws {
        // Name (_HID, EisaId ("PNP0501"))
        #expect(try AML.eisaID("PNP0501") == hexBytes("0c 41d00501"))
        #expect(try AML.eisaIDValue("PNP0A03") == 0x030A_D041)
        for bad in ["pnp0501", "PNP050G", "PNP05", "PN10501"] {
            #expect(throws: ACPIError.invalidEISAID(bad)) { try AML.eisaID(bad) }
        }
    }

    @Test func resourceDescriptors() throws {
        // Memory32Fixed (ReadWrite, 0xD0000000, 0x00001000)
        #expect(AML.memory32Fixed(base: 0xD000_0000, length: 0x1000, access: .readWrite)
            == hexBytes("860900 01 000000d0 00100000"))
        // Memory32Fixed (ReadOnly, 0xFEC00000, 0x00100000)
        #expect(AML.memory32Fixed(base: 0xFEC0_0000, length: 0x10_0000, access: .readOnly)
            == hexBytes("860900 00 0000c0fe 00001000"))
        // Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 5 }
        #expect(try AML.extendedInterrupt([5], trigger: .edge, polarity: .activeHigh, sharing: .exclusive)
            == hexBytes("890600 03 01 05000000"))
        // Interrupt (ResourceConsumer, Level, ActiveLow, Shared) { 5, 0x12345678 }
        #expect(try AML.extendedInterrupt([5, 0x1234_5678], trigger: .level, polarity: .activeLow, sharing: .shared)
            == hexBytes("890a00 0d 02 05000000 78563412"))
        #expect(throws: ACPIError.invalidInterruptCount(0)) {
            try AML.extendedInterrupt([], trigger: .edge, polarity: .activeHigh, sharing: .exclusive)
        }
    }

    @Test func resourceTemplateEndsWithAChecksummedEndTag() throws {
        let memory = AML.memory32Fixed(base: 0xD000_0000, length: 0x1000, access: .readWrite)
        let template = try AML.resourceTemplate([memory])
        // BufferOp, PkgLength, BufferSize (ByteConst 14), descriptor, End Tag.
        #expect(Array(template.prefix(4)) == [0x11, 0x11, 0x0A, 14])
        let data = Array(template.dropFirst(4))
        #expect(data.count == 14)
        #expect(Array(data.prefix(12)) == memory)
        #expect(data[12] == 0x79)
        #expect(byteSum(data) == 0)
        #expect(data[13] != 0)
    }

    /// Device (V000) { Name (_HID, "LNRO0005"); Name (_UID, 0); Name (_CCA, One);
    ///   Name (_CRS, ResourceTemplate () { Memory32Fixed (ReadWrite, 0xD0000000, 0x1000)
    ///   Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 5 } }) }
    @Test func virtioDeviceMatchesIASL() throws {
        let iasl = hexBytes("""
            5b82 4104 56303030
            085f484944 0d4c4e524f3030303500
            085f554944 00
            085f434341 01
            085f435253 111a 0a17 86090001000000d000100000 89060003010500000079 00
            """)
        var ours = try DSDT.virtioDevice(index: 0, VirtioMMIODescriptor(base: 0xD000_0000, size: 0x1000, gsi: 5))
        #expect(ours.count == iasl.count)
        // iasl leaves the End Tag checksum 0 ("not checked", §6.4.2.9); ours is the real sum.
        let endTagData = ours.index(ours.endIndex, offsetBy: -23)
        #expect(byteSum(ours[endTagData...]) == 0)
        ours[ours.count - 1] = 0
        #expect(ours == iasl)
    }

    @Test func deviceNames() {
        #expect(DSDT.deviceName(0) == "V000")
        #expect(DSDT.deviceName(0x2B) == "V02B")
        #expect(DSDT.deviceName(0xFFF) == "VFFF")
    }
}
