import Foundation
import Testing
@testable import ACPI

/// COM1 at 0x3f8 on GSI 4 beside one virtio-mmio device, as the VMM configures the machine.
private func serialConfiguration() -> ACPIConfiguration {
    var config = ACPIConfiguration(vcpuCount: 1, virtioMMIO: [
        VirtioMMIODescriptor(base: 0xD000_0000, size: 0x1000, gsi: 5),
    ])
    config.serialPorts = [SerialPortDescriptor(port: 0x3f8, gsi: 4)]
    return config
}

private func dsdt(_ config: ACPIConfiguration) throws -> [UInt8] {
    let reader = TableReader(try ACPIBuilder.build(config, at: 0xE0000))
    return reader.table(at: reader.dsdtAddress)
}

private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    haystack.firstRange(of: needle) != nil
}

@Suite struct SerialPortTests {
    /// I/O Port Descriptor (ACPI 6.5 §6.4.2.5): IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08).
    @Test func ioPortDescriptor() {
        #expect(AML.ioPort(base: 0x3f8, length: 8) == [0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08])
        #expect(AML.ioPort(base: 0x2f8, length: 8) == [0x47, 0x01, 0xf8, 0x02, 0xf8, 0x02, 0x01, 0x08])
    }

    /// Device (COM1) { Name (_HID, EisaId ("PNP0501")) Name (_UID, Zero) Name (_CRS,
    /// ResourceTemplate () { IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08)
    /// Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 4 } }) }, byte for byte.
    @Test func dsdtDeclaresCOM1() throws {
        let table = try dsdt(serialConfiguration())
        let com1 = hexBytes("""
            5b82 31 434f4d31
            08 5f484944 0c 41d00501
            08 5f554944 00
            08 5f435253 11 16 0a 13
               47 01 f803 f803 01 08
               89 0600 03 01 04000000
               79 a9
            """)
        let start = try #require(table.firstRange(of: com1)?.lowerBound)
        #expect(start > (table.firstRange(of: Array("_SB_".utf8))?.lowerBound ?? .max))
        #expect(contains(table, Array("V000".utf8)))
        #expect(byteSum(table) == 0)
        #expect(try AML.eisaIDValue("PNP0501") == 0x0105_D041)
    }

    @Test func eachPortGetsItsOwnDevice() throws {
        var config = serialConfiguration()
        config.serialPorts.append(SerialPortDescriptor(port: 0x2f8, gsi: 3))
        let table = try dsdt(config)
        let com2 = try #require(table.firstRange(of: Array("COM2".utf8))?.lowerBound)
        let rest = Array(table[com2...])
        #expect(contains(rest, Array("_UID".utf8) + [0x01]))
        #expect(contains(rest, [0x47, 0x01, 0xf8, 0x02, 0xf8, 0x02, 0x01, 0x08]))
        #expect(contains(rest, [0x89, 0x06, 0x00, 0x03, 0x01, 0x03, 0x00, 0x00, 0x00]))
        #expect(byteSum(table) == 0)
    }

    @Test func noPortsNoDevice() throws {
        let table = try dsdt(ACPIConfiguration(vcpuCount: 1))
        #expect(!contains(table, Array("COM1".utf8)))
        #expect(!contains(table, Array("_SB_".utf8)))
        var serialOnly = ACPIConfiguration(vcpuCount: 1)
        serialOnly.serialPorts = [SerialPortDescriptor(port: 0x3f8, gsi: 4)]
        let withSerial = try dsdt(serialOnly)
        #expect(contains(withSerial, Array("_SB_".utf8)) && contains(withSerial, Array("COM1".utf8)))
    }

}
