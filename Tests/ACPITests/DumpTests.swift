import Foundation
import Testing
@testable import ACPI

/// With ACPI_DUMP_DIR set, writes each table of the reference configuration to its own file
/// (rsdp.dat, xsdt.dat, facp.dat, dsdt.dat, apic.dat) for `iasl -d`. See docs/acpi.md.
@Suite struct DumpTests {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["ACPI_DUMP_DIR"] != nil))
    func writesTablesForDisassembly() throws {
        let dir = ProcessInfo.processInfo.environment["ACPI_DUMP_DIR"]!
        let tables = try ACPIBuilder.build(referenceConfiguration(), at: 0xE0000)
        let reader = TableReader(tables)
        var files: [(String, [UInt8])] = [("rsdp", reader.bytes(at: tables.rsdpAddress, count: 36))]
        files.append(("xsdt", reader.table(at: reader.xsdtAddress)))
        for address in reader.xsdtEntries + [reader.dsdtAddress] {
            files.append((reader.signature(at: address).lowercased(), reader.table(at: address)))
        }
        #expect(files.map(\.0) == ["rsdp", "xsdt", "facp", "apic", "dsdt"])
        for (name, bytes) in files {
            try Data(bytes).write(to: URL(fileURLWithPath: dir).appendingPathComponent("\(name).dat"))
        }
    }
}
