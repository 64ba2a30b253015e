import Testing
@testable import ACPI

@Suite struct TableTests {
    let base: UInt64 = 0xE0000

    @Test func rsdpHasBothChecksumsAndPointsAtTheXSDT() throws {
        let tables = try ACPIBuilder.build(referenceConfiguration(), at: base)
        let r = TableReader(tables)
        #expect(tables.rsdpAddress == base)
        #expect(tables.base == base)
        let rsdp = r.bytes(at: base, count: 36)
        #expect(Array(rsdp.prefix(8)) == Array("RSD PTR ".utf8))
        #expect(byteSum(rsdp.prefix(20)) == 0)
        #expect(byteSum(rsdp) == 0)
        #expect(String(decoding: rsdp[9..<15], as: UTF8.self) == "MOMIN ")
        #expect(rsdp[15] == 2)
        #expect(r.u32(at: base + 16) == 0)  // RsdtAddress
        #expect(r.u32(at: base + 20) == 36)
        #expect(r.signature(at: r.xsdtAddress) == "XSDT")
    }

    /// Same bytes as `iasl -d` printed for the reference configuration and its table compiler
    /// produced from that listing (see docs/acpi.md).
    @Test func rsdpMatchesIASL() throws {
        let tables = try ACPIBuilder.build(referenceConfiguration(), at: base)
        #expect(Array(tables.bytes.prefix(36)) == hexBytes("""
            5253442050545220 3f 4d4f4d494e20 02 00000000 24000000 28000e0000000000 a6 000000
            """))
    }

    @Test(arguments: [1, 2, 7, 255])
    func everyTableHasAValidHeader(vcpus: Int) throws {
        var config = ACPIConfiguration(vcpuCount: vcpus)
        config.virtioMMIO = (0..<5).map { VirtioMMIODescriptor(base: 0xD000_0000 + UInt64($0) * 0x1000, size: 0x1000, gsi: 5 + UInt32($0)) }
        let tables = try ACPIBuilder.build(config, at: base)
        let r = TableReader(tables)
        let addresses = [r.xsdtAddress, r.fadtAddress, r.dsdtAddress, r.madtAddress]
        #expect(addresses.map(r.signature(at:)) == ["XSDT", "FACP", "DSDT", "APIC"])
        for address in addresses {
            let table = r.table(at: address)
            #expect(byteSum(table) == 0, "checksum of \(r.signature(at: address))")
            #expect(address % 8 == 0)
            #expect(String(decoding: table[10..<16], as: UTF8.self) == "MOMIN ")
            #expect(String(decoding: table[16..<24], as: UTF8.self) == "MOMINVMM")
            #expect(String(decoding: table[28..<32], as: UTF8.self) == "MOMI")
        }
        // Contiguous, in order, with no more than 7 bytes of padding between tables, and the
        // last table ends the blob: header lengths are the real lengths.
        let ordered = [tables.rsdpAddress, r.xsdtAddress, r.fadtAddress, r.dsdtAddress, r.madtAddress]
        let lengths = [36] + ordered.dropFirst().map { Int(r.u32(at: $0 + 4)) }
        for i in 0..<ordered.count - 1 {
            let end = ordered[i] + UInt64(lengths[i])
            #expect(ordered[i + 1] >= end && ordered[i + 1] - end < 8)
        }
        #expect(ordered.last! + UInt64(lengths.last!) == base + UInt64(tables.bytes.count))
    }

    @Test func xsdtListsFADTAndMADT() throws {
        let tables = try ACPIBuilder.build(referenceConfiguration(), at: base)
        let r = TableReader(tables)
        #expect(r.u32(at: r.xsdtAddress + 4) == 36 + 16)
        #expect(r.u8(at: r.xsdtAddress + 8) == 1)
        #expect(r.xsdtEntries.map(r.signature(at:)) == ["FACP", "APIC"])
        // Layout from base 0xE0000: RSDP 36 → XSDT at +0x28, FADT at +0x60.
        #expect(r.xsdtAddress == 0xE0028)
        #expect(r.xsdtEntries.first == 0xE0060)
    }

    @Test func fadtDescribesAHardwareReducedMachine() throws {
        var config = referenceConfiguration()
        config.sleepControlPort = 0x3C0
        config.sleepStatusPort = 0x3C1
        config.resetPort = 0x3C4
        config.resetValue = 0x0E
        let tables = try ACPIBuilder.build(config, at: base)
        let r = TableReader(tables)
        let f = r.fadtAddress
        #expect(r.u32(at: f + 4) == 276)
        #expect(r.u8(at: f + 8) == 6)
        #expect(r.u8(at: f + 131) == 3)  // minor version
        let flags = r.u32(at: f + 112)
        #expect(flags == 1 << 20 | 1 << 10 | 1 << 5 | 1 << 4)
        #expect(r.u16(at: f + 109) == 0x3C)  // no VGA, no MSI, no ASPM, no CMOS RTC
        #expect(r.u64(at: f + 140) == r.dsdtAddress)
        #expect(UInt64(r.u32(at: f + 40)) == r.dsdtAddress)
        #expect(r.signature(at: r.dsdtAddress) == "DSDT")
        #expect(r.u32(at: f + 36) == 0 && r.u64(at: f + 132) == 0)  // no FACS
        #expect(r.u16(at: f + 46) == 0)  // no SCI
        // Generic Address Structures: System I/O, 8 bits wide, offset 0, byte access.
        #expect(r.bytes(at: f + 116, count: 12) == [1, 8, 0, 1, 0xC4, 0x03, 0, 0, 0, 0, 0, 0])
        #expect(r.u8(at: f + 128) == 0x0E)
        #expect(r.bytes(at: f + 244, count: 12) == [1, 8, 0, 1, 0xC0, 0x03, 0, 0, 0, 0, 0, 0])
        #expect(r.bytes(at: f + 256, count: 12) == [1, 8, 0, 1, 0xC1, 0x03, 0, 0, 0, 0, 0, 0])
        #expect(String(decoding: r.bytes(at: f + 268, count: 8), as: UTF8.self) == "MOMINVMM")
        // The PM1/PM2/timer/GPE blocks, 32- and 64-bit forms, are all absent.
        #expect(r.bytes(at: f + 56, count: 32).allSatisfy { $0 == 0 })
        #expect(r.bytes(at: f + 148, count: 96).allSatisfy { $0 == 0 })
    }

    @Test(arguments: [1, 2, 16, 255])
    func madtHasOneLocalAPICPerVCPUAndOneIOAPIC(vcpus: Int) throws {
        var config = ACPIConfiguration(vcpuCount: vcpus)
        config.ioAPICAddress = 0xFEC1_0000
        let tables = try ACPIBuilder.build(config, at: base)
        let r = TableReader(tables)
        let m = r.madtAddress
        let length = Int(r.u32(at: m + 4))
        #expect(length == 44 + 8 * vcpus + 12)
        #expect(r.u8(at: m + 8) == 5)
        #expect(r.u32(at: m + 36) == 0xFEE0_0000)
        #expect(r.u32(at: m + 40) == 0)  // PCAT_COMPAT clear
        var localAPICs: [(uid: UInt8, id: UInt8, flags: UInt32)] = []
        var ioAPICs: [(id: UInt8, address: UInt32, gsiBase: UInt32)] = []
        var cursor = m + 44
        while cursor < m + UInt64(length) {
            let type = r.u8(at: cursor), entryLength = r.u8(at: cursor + 1)
            switch type {
            case 0:
                #expect(entryLength == 8)
                localAPICs.append((r.u8(at: cursor + 2), r.u8(at: cursor + 3), r.u32(at: cursor + 4)))
            case 1:
                #expect(entryLength == 12)
                ioAPICs.append((r.u8(at: cursor + 2), r.u32(at: cursor + 4), r.u32(at: cursor + 8)))
            default:
                Issue.record("unexpected MADT entry type \(type)")
            }
            cursor += UInt64(entryLength)
        }
        #expect(cursor == m + UInt64(length))
        #expect(localAPICs.map(\.id) == (0..<vcpus).map { UInt8($0) })
        #expect(localAPICs.allSatisfy { $0.uid == $0.id && $0.flags == 1 })
        #expect(ioAPICs.count == 1)
        #expect(ioAPICs.first?.id == UInt8(vcpus))
        #expect(ioAPICs.first?.address == 0xFEC1_0000)
        #expect(ioAPICs.first?.gsiBase == 0)
    }

    @Test func ioAPICIDCanBeChosen() throws {
        var config = ACPIConfiguration(vcpuCount: 2)
        #expect(config.ioAPICID == 2)
        config.ioAPICID = 0x20
        let r = TableReader(try ACPIBuilder.build(config, at: base))
        #expect(r.u8(at: r.madtAddress + 44 + 16 + 2) == 0x20)
    }

    /// The DSDT body is exactly what iasl compiles from the disassembly of our DSDT, except
    /// the two End Tag checksums, which iasl leaves 0.
    @Test func dsdtMatchesIASL() throws {
        let tables = try ACPIBuilder.build(referenceConfiguration(), at: base)
        let r = TableReader(tables)
        let dsdt = r.table(at: r.dsdtAddress)
        #expect(dsdt.count == 190)
        #expect(dsdt[8] == 2)  // revision 2: 64-bit integers
        var body = Array(dsdt.dropFirst(36))
        let iasl = hexBytes("""
            085f53355f1207040a05000000
            104c085f53425f
            5b82410456303030085f4849440d4c4e524f3030303500085f55494400085f43434101
            085f435253111a0a1786090001000000d00010000089060003010500000079 00
            5b82410456303031085f4849440d4c4e524f3030303500085f55494401085f43434101
            085f435253111a0a1786090001001000d00010000089060003010600000079 00
            """)
        #expect(body[86] == 0x7F && body[153] == 0x6E)  // our End Tag checksums
        body[86] = 0
        body[153] = 0
        #expect(body == iasl)
    }

    @Test func dsdtWithoutDevicesHasOnlyS5() throws {
        let tables = try ACPIBuilder.build(ACPIConfiguration(vcpuCount: 1), at: base)
        let r = TableReader(tables)
        let dsdt = r.table(at: r.dsdtAddress)
        #expect(Array(dsdt.dropFirst(36)) == hexBytes("085f53355f1207040a05000000"))
    }

    @Test func dsdtNamesEveryDevice() throws {
        var config = ACPIConfiguration(vcpuCount: 1)
        config.virtioMMIO = (0..<300).map { VirtioMMIODescriptor(base: 0xC000_0000 + UInt64($0) * 0x200, size: 0x200, gsi: 5) }
        let tables = try ACPIBuilder.build(config, at: base)
        let r = TableReader(tables)
        let dsdt = r.table(at: r.dsdtAddress)
        #expect(occurrences(of: Array("LNRO0005".utf8), in: dsdt) == 300)
        for (index, name) in [(0, "V000"), (0x12B, "V12B")] {
            // Device op, a 2-byte PkgLength, then the name.
            let device = try DSDT.virtioDevice(index: index, config.virtioMMIO[index])
            #expect(Array(device[4..<8]) == Array(name.utf8))
            #expect(occurrences(of: device, in: dsdt) == 1)
        }
        // After \_S5_ (13 bytes) comes Scope (_SB_), which outgrew 4095 bytes: its PkgLength
        // takes three bytes and covers the rest of the table.
        let scope = 36 + 13
        #expect(dsdt[scope] == 0x10)
        #expect(dsdt[scope + 1] >> 6 == 2)
        let pkgLength = Int(dsdt[scope + 1] & 0x0F) | Int(dsdt[scope + 2]) << 4 | Int(dsdt[scope + 3]) << 12
        #expect(pkgLength == dsdt.count - scope - 1)
        #expect(Array(dsdt[scope + 4..<scope + 8]) == Array("_SB_".utf8))
    }

    @Test func movingTheBaseMovesOnlyThePointers() throws {
        let low = try ACPIBuilder.build(referenceConfiguration(), at: 0xE0000)
        let high = try ACPIBuilder.build(referenceConfiguration(), at: 0x1_0000_0000)
        #expect(low.bytes.count == high.bytes.count)
        let h = TableReader(high)
        #expect(h.xsdtAddress == 0x1_0000_0028)
        #expect(h.signature(at: h.dsdtAddress) == "DSDT")
        #expect(h.u32(at: h.fadtAddress + 40) == 0)  // DSDT above 4 GiB: only X_DSDT
        #expect(byteSum(h.table(at: h.fadtAddress)) == 0)
        #expect(TableReader(low).table(at: 0xE0000 + 0x178) == h.table(at: 0x1_0000_0178))  // DSDT
    }

    @Test func errorsReadAsMessages() {
        #expect(ACPIError.invalidVCPUCount(0).description == "vCPU count 0 is outside 1...255")
        #expect(ACPIError.tablesTooLarge(size: 200_000, limit: 0x20000).description
            == "ACPI tables need 200000 bytes, more than the 131072 reserved")
        #expect(ACPIError.misalignedBase(0xE0008).description == "ACPI base 0xE0008 is not 16-byte aligned")
    }
}

private func occurrences(of needle: [UInt8], in haystack: [UInt8]) -> Int {
    guard haystack.count >= needle.count else { return 0 }
    return (0...(haystack.count - needle.count)).filter { Array(haystack[$0..<$0 + needle.count]) == needle }.count
}
