import Foundation
import Testing
@testable import ACPI

/// Checks the tables with an independent reader: ACPICA's disassembler (`iasl -d`, Debian's
/// acpica-tools, which Scripts/setup installs). Every table of a machine with 2 vCPUs, COM1 and
/// two virtio-mmio devices must disassemble with no error or warning and say what we meant.
/// Set ACPI_DUMP_DIR to keep the .dat and .dsl files for a look.
@Suite struct IASLTests {
    @Test func iaslDisassemblesEveryTableCleanly() throws {
        var config = referenceConfiguration()
        config.serialPorts = [SerialPortDescriptor(port: 0x3f8, gsi: 4)]
        let tables = try ACPIBuilder.build(config, at: 0xE0000)
        let reader = TableReader(tables)
        var files: [(String, [UInt8])] = [("xsdt", reader.table(at: reader.xsdtAddress))]
        for address in reader.xsdtEntries + [reader.dsdtAddress] {
            files.append((reader.signature(at: address).lowercased(), reader.table(at: address)))
        }
        #expect(files.map(\.0) == ["xsdt", "facp", "apic", "dsdt"])

        let dir = ProcessInfo.processInfo.environment["ACPI_DUMP_DIR"]
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("momin-iasl-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if ProcessInfo.processInfo.environment["ACPI_DUMP_DIR"] == nil { try? FileManager.default.removeItem(atPath: dir) } }

        var listings: [String: String] = [:]
        for (name, bytes) in files {
            let path = "\(dir)/\(name).dat"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let (status, output) = try run("/usr/bin/iasl", ["-d", path], in: dir)
            #expect(status == 0, "iasl -d \(name): \(output)")
            #expect(!output.contains("Error"), "iasl -d \(name): \(output)")
            #expect(!output.contains("Warning"), "iasl -d \(name): \(output)")
            listings[name] = try String(contentsOfFile: "\(dir)/\(name).dsl", encoding: .utf8)
        }
        let facp = try #require(listings["facp"])
        #expect(facp.contains("Hardware Reduced (V5) : 1"))
        #expect(facp.contains("Reset Register Supported (V2) : 1"))
        let apic = try #require(listings["apic"])
        #expect(apic.components(separatedBy: "Subtable Type : 00 [Processor Local APIC]").count - 1 == 2)
        #expect(apic.contains("Subtable Type : 01 [I/O APIC]"))
        let dsdt = try #require(listings["dsdt"])
        for expected in ["Name (_S5, Package (0x04)", "Device (COM1)", "EisaId (\"PNP0501\")",
                         "IO (Decode16,", "0x03F8,", "Device (V000)", "Device (V001)", "\"LNRO0005\"",
                         "Memory32Fixed (ReadWrite,", "0xD0001000,"] {
            #expect(dsdt.contains(expected), "DSDT listing lacks \(expected)")
        }
    }

    private func run(_ tool: String, _ arguments: [String], in directory: String) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }
}
