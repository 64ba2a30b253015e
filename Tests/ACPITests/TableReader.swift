@testable import ACPI

/// Reads the built blob by guest-physical address, independently of the builder's own layout
/// code, so the tests check what a guest would find.
struct TableReader {
    let tables: ACPITables

    init(_ tables: ACPITables) { self.tables = tables }

    func offset(_ address: UInt64) -> Int { Int(address - tables.base) }

    func bytes(at address: UInt64, count: Int) -> [UInt8] {
        let start = offset(address)
        return Array(tables.bytes[start..<start + count])
    }

    func u8(at address: UInt64) -> UInt8 { tables.bytes[offset(address)] }
    func u16(at address: UInt64) -> UInt16 { UInt16(le(bytes(at: address, count: 2))) }
    func u32(at address: UInt64) -> UInt32 { UInt32(le(bytes(at: address, count: 4))) }
    func u64(at address: UInt64) -> UInt64 { le(bytes(at: address, count: 8)) }

    func signature(at address: UInt64) -> String {
        String(decoding: bytes(at: address, count: 4), as: UTF8.self)
    }

    /// A whole table, as long as its header says.
    func table(at address: UInt64) -> [UInt8] {
        bytes(at: address, count: Int(u32(at: address + 4)))
    }

    var xsdtAddress: UInt64 { u64(at: tables.rsdpAddress + 24) }
    var xsdtEntries: [UInt64] {
        let count = (Int(u32(at: xsdtAddress + 4)) - 36) / 8
        return (0..<count).map { u64(at: xsdtAddress + 36 + UInt64(8 * $0)) }
    }
    func address(of signature: String) -> UInt64? {
        xsdtEntries.first { self.signature(at: $0) == signature }
    }
    var fadtAddress: UInt64 { address(of: "FACP")! }
    var madtAddress: UInt64 { address(of: "APIC")! }
    var dsdtAddress: UInt64 { u64(at: fadtAddress + 140) }
}

func le<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
    bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) }
}

func byteSum<C: Collection>(_ bytes: C) -> UInt8 where C.Element == UInt8 {
    bytes.reduce(0, &+)
}

func hexBytes(_ text: String) -> [UInt8] {
    let digits = text.filter { !$0.isWhitespace }
    var out: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        out.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return out
}

/// The configuration the iasl check used: two vCPUs, two virtio-mmio devices.
func referenceConfiguration() -> ACPIConfiguration {
    ACPIConfiguration(vcpuCount: 2, virtioMMIO: [
        VirtioMMIODescriptor(base: 0xD000_0000, size: 0x1000, gsi: 5),
        VirtioMMIODescriptor(base: 0xD000_1000, size: 0x1000, gsi: 6),
    ])
}
