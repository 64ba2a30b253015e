/// Little-endian byte building. ACPI tables and AML are little-endian throughout (ACPI 6.5 §5.2).
/// The width is in each call's label so integer literals cannot pick the wrong one.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    init() {}

    init(zeros count: Int) {
        bytes = [UInt8](repeating: 0, count: count)
    }

    var count: Int { bytes.count }

    mutating func append(u8 value: UInt8) { bytes.append(value) }
    mutating func append(u16 value: UInt16) { bytes += littleEndian(UInt64(value), width: 2) }
    mutating func append(u32 value: UInt32) { bytes += littleEndian(UInt64(value), width: 4) }
    mutating func append(u64 value: UInt64) { bytes += littleEndian(value, width: 8) }
    mutating func append(bytes values: [UInt8]) { bytes += values }

    /// Pads with zeros until the count is a multiple of `alignment`.
    mutating func pad(toMultipleOf alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }

    mutating func put(u8 value: UInt8, at offset: Int) { bytes[offset] = value }
    mutating func put(u16 value: UInt16, at offset: Int) { put(bytes: littleEndian(UInt64(value), width: 2), at: offset) }
    mutating func put(u32 value: UInt32, at offset: Int) { put(bytes: littleEndian(UInt64(value), width: 4), at: offset) }
    mutating func put(u64 value: UInt64, at offset: Int) { put(bytes: littleEndian(value, width: 8), at: offset) }
    mutating func put(bytes values: [UInt8], at offset: Int) {
        bytes.replaceSubrange(offset..<offset + values.count, with: values)
    }
}

func littleEndian(_ value: UInt64, width: Int) -> [UInt8] {
    (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
}

/// The byte that makes `bytes` plus itself sum to zero mod 256 (ACPI 6.5 §5.2.6, §6.4.2.9).
func checksum<C: Collection>(_ bytes: C) -> UInt8 where C.Element == UInt8 {
    var sum: UInt8 = 0
    for byte in bytes { sum &+= byte }
    return 0 &- sum
}
