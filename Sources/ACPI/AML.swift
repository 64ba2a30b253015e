/// A small encoder for the ACPI Machine Language (ACPI 6.5 §20): just the terms a DSDT that
/// describes fixed devices needs. Every function returns the encoded bytes of one term, so
/// terms nest by passing arrays of bytes.
public enum AML {
    // Opcodes and prefixes (ACPI 6.5 §20.2).
    static let zeroOp: UInt8 = 0x00
    static let oneOp: UInt8 = 0x01
    static let onesOp: UInt8 = 0xFF
    static let nameOp: UInt8 = 0x08
    static let bytePrefix: UInt8 = 0x0A
    static let wordPrefix: UInt8 = 0x0B
    static let dwordPrefix: UInt8 = 0x0C
    static let stringPrefix: UInt8 = 0x0D
    static let qwordPrefix: UInt8 = 0x0E
    static let scopeOp: UInt8 = 0x10
    static let bufferOp: UInt8 = 0x11
    static let packageOp: UInt8 = 0x12
    static let extOpPrefix: UInt8 = 0x5B
    static let deviceOp: UInt8 = 0x82
    static let rootChar: UInt8 = 0x5C  // '\'
    static let parentPrefixChar: UInt8 = 0x5E  // '^'
    static let dualNamePrefix: UInt8 = 0x2E
    static let multiNamePrefix: UInt8 = 0x2F
    static let nullName: UInt8 = 0x00

    /// The largest value a PkgLength can carry: 4 bits plus three more bytes (ACPI 6.5 §20.2.4).
    public static let maxPkgLength = (1 << 28) - 1

    // MARK: Package length (§20.2.4)

    /// Encodes `value` as a PkgLength: one byte up to 63; otherwise bits 7-6 of the lead byte
    /// give how many bytes follow (1-3), its bits 3-0 hold the low nibble and the following
    /// bytes the rest, least significant first.
    public static func pkgLength(value: Int) throws(ACPIError) -> [UInt8] {
        guard value >= 0, value <= maxPkgLength else { throw ACPIError.packageTooLong(value) }
        if value < 0x40 { return [UInt8(value)] }
        let following = value < 0x1000 ? 1 : (value < 0x10_0000 ? 2 : 3)
        var bytes = [UInt8(following << 6) | UInt8(value & 0x0F)]
        for i in 0..<following {
            bytes.append(UInt8(truncatingIfNeeded: value >> (4 + 8 * i)))
        }
        return bytes
    }

    /// The PkgLength that prefixes `bodyCount` bytes. The value counts the PkgLength's own
    /// bytes too, so a body of 63 bytes already needs the two-byte form.
    public static func pkgLength(forBody bodyCount: Int) throws(ACPIError) -> [UInt8] {
        for size in 1...4 {
            let encoded = try pkgLength(value: bodyCount + size)
            if encoded.count == size { return encoded }
        }
        throw ACPIError.packageTooLong(bodyCount)
    }

    static func withPkgLength(_ body: [UInt8]) throws(ACPIError) -> [UInt8] {
        try pkgLength(forBody: body.count) + body
    }

    // MARK: Names (§20.2.2)

    /// A four-character NameSeg: a capital letter or `_`, then capitals, digits or `_`.
    /// Shorter names are padded with `_` as ASL does.
    public static func nameSeg(_ name: String) throws(ACPIError) -> [UInt8] {
        let chars = Array(name.utf8)
        guard (1...4).contains(chars.count) else { throw ACPIError.invalidName(name) }
        for (i, c) in chars.enumerated() {
            let leadOK = (c >= 0x41 && c <= 0x5A) || c == 0x5F
            let digit = c >= 0x30 && c <= 0x39
            guard leadOK || (i > 0 && digit) else { throw ACPIError.invalidName(name) }
        }
        return chars + [UInt8](repeating: 0x5F, count: 4 - chars.count)
    }

    /// A NameString: an optional root `\` or parent `^` prefixes, then dot-separated NameSegs,
    /// e.g. `\_SB_.V000`. Two segments use DualNamePrefix, more use MultiNamePrefix.
    public static func nameString(_ path: String) throws(ACPIError) -> [UInt8] {
        var rest = Substring(path)
        var prefix: [UInt8] = []
        if rest.first == "\\" {
            prefix.append(rootChar)
            rest = rest.dropFirst()
        } else {
            while rest.first == "^" {
                prefix.append(parentPrefixChar)
                rest = rest.dropFirst()
            }
        }
        if rest.isEmpty {
            guard !prefix.isEmpty else { throw ACPIError.invalidName(path) }
            return prefix + [nullName]
        }
        let segments = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard segments.count <= 255 else { throw ACPIError.invalidName(path) }
        var encoded: [UInt8] = []
        for segment in segments {
            guard let seg = try? nameSeg(String(segment)) else { throw ACPIError.invalidName(path) }
            encoded += seg
        }
        switch segments.count {
        case 1: return prefix + encoded
        case 2: return prefix + [dualNamePrefix] + encoded
        default: return prefix + [multiNamePrefix, UInt8(segments.count)] + encoded
        }
    }

    // MARK: Data objects (§20.2.3)

    /// An integer in the smallest encoding: ZeroOp, OneOp, OnesOp (all bits set; 64-bit
    /// because the DSDT revision is 2), else Byte/Word/DWord/QWordConst.
    public static func integer(_ value: UInt64) -> [UInt8] {
        switch value {
        case 0: return [zeroOp]
        case 1: return [oneOp]
        case .max: return [onesOp]
        case ...0xFF: return [bytePrefix, UInt8(value)]
        case ...0xFFFF: return [wordPrefix] + littleEndian(value, width: 2)
        case ...0xFFFF_FFFF: return [dwordPrefix] + littleEndian(value, width: 4)
        default: return [qwordPrefix] + littleEndian(value, width: 8)
        }
    }

    /// A NUL-terminated ASCII string constant.
    public static func string(_ value: String) throws(ACPIError) -> [UInt8] {
        let chars = Array(value.utf8)
        guard chars.allSatisfy({ $0 >= 0x01 && $0 <= 0x7F }) else { throw ACPIError.invalidString(value) }
        return [stringPrefix] + chars + [0]
    }

    /// Buffer: BufferOp PkgLength BufferSize ByteList (§20.2.5.4).
    public static func buffer(_ bytes: [UInt8]) throws(ACPIError) -> [UInt8] {
        [bufferOp] + (try withPkgLength(integer(UInt64(bytes.count)) + bytes))
    }

    /// Package: PackageOp PkgLength NumElements PackageElementList (§20.2.5.4).
    public static func package(_ elements: [[UInt8]]) throws(ACPIError) -> [UInt8] {
        guard elements.count <= 255 else { throw ACPIError.tooManyPackageElements(elements.count) }
        return [packageOp] + (try withPkgLength([UInt8(elements.count)] + elements.joined()))
    }

    /// An EISA id such as "PNP0501" compressed into the 32-bit form ASL's EisaId() makes:
    /// three 5-bit letters, then four hex digits, stored as a DWordConst.
    public static func eisaID(_ id: String) throws(ACPIError) -> [UInt8] {
        [dwordPrefix] + littleEndian(UInt64(try eisaIDValue(id)), width: 4)
    }

    /// The integer value of an EISA id, e.g. 0x0105D041 for "PNP0501".
    public static func eisaIDValue(_ id: String) throws(ACPIError) -> UInt32 {
        let chars = Array(id.utf8)
        guard chars.count == 7,
              chars[0..<3].allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else { throw ACPIError.invalidEISAID(id) }
        var digits: [UInt8] = []
        for c in chars[3...] {
            guard let d = hexDigit(c) else { throw ACPIError.invalidEISAID(id) }
            digits.append(d)
        }
        let l1 = chars[0] - 0x40, l2 = chars[1] - 0x40, l3 = chars[2] - 0x40
        let b0 = (l1 << 2) | (l2 >> 3)
        let b1 = ((l2 & 0x07) << 5) | l3
        let b2 = (digits[0] << 4) | digits[1]
        let b3 = (digits[2] << 4) | digits[3]
        return UInt32(b0) | UInt32(b1) << 8 | UInt32(b2) << 16 | UInt32(b3) << 24
    }

    private static func hexDigit(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }

    // MARK: Namespace terms (§20.2.5.1, §20.2.5.2)

    /// Name(path, object).
    public static func name(_ path: String, _ object: [UInt8]) throws(ACPIError) -> [UInt8] {
        [nameOp] + (try nameString(path)) + object
    }

    /// Scope(path) { terms }.
    public static func scope(_ path: String, _ terms: [[UInt8]]) throws(ACPIError) -> [UInt8] {
        [scopeOp] + (try withPkgLength(nameString(path) + terms.joined()))
    }

    /// Device(path) { terms }.
    public static func device(_ path: String, _ terms: [[UInt8]]) throws(ACPIError) -> [UInt8] {
        [extOpPrefix, deviceOp] + (try withPkgLength(nameString(path) + terms.joined()))
    }

    // MARK: Resource descriptors (§6.4)

    public enum Access: Sendable { case readOnly, readWrite }
    public enum Trigger: Sendable { case level, edge }
    public enum Polarity: Sendable { case activeHigh, activeLow }
    public enum Sharing: Sendable { case exclusive, shared }

    /// ResourceTemplate(): a Buffer of descriptors closed by an End Tag (§6.4.2.9) whose
    /// checksum byte makes the whole template sum to zero.
    public static func resourceTemplate(_ descriptors: [[UInt8]]) throws(ACPIError) -> [UInt8] {
        var bytes = Array(descriptors.joined())
        bytes.append(0x79)  // small item, type 0xF (End Tag), length 1
        bytes.append(checksum(bytes))
        return try buffer(bytes)
    }

    /// 32-Bit Fixed Memory Range Descriptor (§6.4.3.4): large item 0x86, length 9.
    public static func memory32Fixed(base: UInt32, length: UInt32, access: Access) -> [UInt8] {
        var w = ByteWriter()
        w.append(u8: 0x86)
        w.append(u16: 9)
        w.append(u8: access == .readWrite ? 1 : 0)
        w.append(u32: base)
        w.append(u32: length)
        return w.bytes
    }

    /// I/O Port Descriptor (§6.4.2.5): small item 0x47, 16-bit decode, a fixed window of
    /// `length` ports at `base`.
    public static func ioPort(base: UInt16, length: UInt8) -> [UInt8] {
        var w = ByteWriter()
        w.append(u8: 0x47)
        w.append(u8: 0x01)  // decodes 16 address bits
        w.append(u16: base) // range minimum
        w.append(u16: base) // range maximum
        w.append(u8: 1)     // alignment
        w.append(u8: length)
        return w.bytes
    }

    /// Extended Interrupt Descriptor (§6.4.3.6): large item 0x89. Flags: bit 0 consumer,
    /// bit 1 edge-triggered, bit 2 active-low, bit 3 shared. No resource source.
    public static func extendedInterrupt(
        _ interrupts: [UInt32], trigger: Trigger, polarity: Polarity, sharing: Sharing
    ) throws(ACPIError) -> [UInt8] {
        guard (1...255).contains(interrupts.count) else {
            throw ACPIError.invalidInterruptCount(interrupts.count)
        }
        var flags: UInt8 = 0x01  // ResourceConsumer
        if trigger == .edge { flags |= 0x02 }
        if polarity == .activeLow { flags |= 0x04 }
        if sharing == .shared { flags |= 0x08 }
        var w = ByteWriter()
        w.append(u8: 0x89)
        w.append(u16: UInt16(2 + 4 * interrupts.count))
        w.append(u8: flags)
        w.append(u8: UInt8(interrupts.count))
        for gsi in interrupts { w.append(u32: gsi) }
        return w.bytes
    }
}
