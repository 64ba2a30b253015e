/// A small pull reader of JSON (RFC 8259) for PEP 691 pages: the caller walks objects and arrays
/// member by member and skips what it does not read, so nothing is kept but what it keeps.
/// Strict like `BrainWire.JSONScan` (no trailing commas, escapes checked, surrogates paired),
/// nesting bounded; the text's UTF-8 is checked once by the caller before reading. (JSONScan
/// itself keeps at most 4096 members of a container, fewer than a large project's files.)
struct JSONReader {
    static let maximumDepth = 16

    let bytes: [UInt8]
    var index = 0
    var depth = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    enum Kind { case object, array, string, number, bool, null }

    func error(_ reason: String) -> PackageIndexError {
        PackageIndexError(.simpleIndex, "JSON: \(reason) at byte \(index)")
    }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func skipWhitespace() {
        while let byte = peek, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
    }

    /// The kind of the next value, whitespace skipped.
    mutating func kind() throws(PackageIndexError) -> Kind {
        skipWhitespace()
        guard let byte = peek else { throw error("the text ends where a value should be") }
        switch byte {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case 0x22: return .string
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        case UInt8(ascii: "-"), 0x30...0x39: return .number
        default: throw error("a value cannot start with \(ASCII.quote([byte]))")
        }
    }

    mutating func enter(_ byte: UInt8, _ what: String) throws(PackageIndexError) {
        skipWhitespace()
        guard peek == byte else { throw error("\(what) expected") }
        guard depth < JSONReader.maximumDepth else { throw error("nesting deeper than \(JSONReader.maximumDepth)") }
        depth += 1
        index += 1
    }

    /// Starts an object: then `member(&first)` until it gives nil.
    mutating func beginObject() throws(PackageIndexError) { try enter(UInt8(ascii: "{"), "an object") }

    /// The next member's name, the reader left at its value; nil past the closing brace.
    mutating func member(_ first: inout Bool) throws(PackageIndexError) -> String? {
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return nil
        }
        if !first {
            guard peek == UInt8(ascii: ",") else { throw error("no \",\" or \"}\" after an object member") }
            index += 1
            skipWhitespace()
        }
        first = false
        guard peek == 0x22 else { throw error("an object member does not start with a string name") }
        let name = try string()
        skipWhitespace()
        guard peek == UInt8(ascii: ":") else { throw error("no \":\" after a member name") }
        index += 1
        return name
    }

    /// Starts an array: then `element(&first)` until it gives false.
    mutating func beginArray() throws(PackageIndexError) { try enter(UInt8(ascii: "["), "an array") }

    /// Whether another element follows, the reader left at it.
    mutating func element(_ first: inout Bool) throws(PackageIndexError) -> Bool {
        skipWhitespace()
        if peek == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return false
        }
        if !first {
            guard peek == UInt8(ascii: ",") else { throw error("no \",\" or \"]\" after an array element") }
            index += 1
        }
        first = false
        return true
    }

    /// A string value (§7), unescaped.
    mutating func string() throws(PackageIndexError) -> String {
        skipWhitespace()
        guard peek == 0x22 else { throw error("a string expected") }
        index += 1
        var out: [UInt8] = []
        while true {
            guard let byte = peek else { throw error("a string is not closed") }
            switch byte {
            case 0x22:
                index += 1
                return String(decoding: out, as: UTF8.self)
            case 0x5C:
                index += 1
                guard let escaped = peek else { throw error("a string ends inside an escape") }
                index += 1
                switch escaped {
                case 0x22, 0x5C, 0x2F: out.append(escaped)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"): out += Array(String(try unicodeEscape()).utf8)
                default: throw error("an unknown escape \\\(ASCII.quote([escaped]))")
                }
            case 0x00..<0x20:
                throw error("a control character in a string (§7: it must be escaped)")
            default:
                out.append(byte)
                index += 1
            }
        }
    }

    /// The scalar of `\uXXXX` (after its `\u`), a surrogate pair read whole (§7, §8.2).
    mutating func unicodeEscape() throws(PackageIndexError) -> Character {
        let unit = try hex4()
        var scalar = unit
        if (0xD800...0xDBFF).contains(unit) {
            guard bytes.count - index >= 2, bytes[index] == 0x5C, bytes[index + 1] == UInt8(ascii: "u") else {
                throw error("a lone high surrogate (§8.2)")
            }
            index += 2
            let low = try hex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw error("a high surrogate not followed by a low one (§8.2)") }
            scalar = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(unit) {
            throw error("a lone low surrogate (§8.2)")
        }
        guard let value = Unicode.Scalar(scalar) else { throw error("an escape that names no character") }
        return Character(value)
    }

    mutating func hex4() throws(PackageIndexError) -> UInt32 {
        guard bytes.count - index >= 4 else { throw error("a \\u escape without four hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            guard ASCII.isHexDigit(byte) else { throw error("a \\u escape without four hex digits") }
            let digit = ASCII.isDigit(byte) ? byte - 0x30 : ASCII.lower(byte) - 0x61 + 10
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    mutating func bool() throws(PackageIndexError) -> Bool {
        skipWhitespace()
        if bytes[index...].starts(with: "true".utf8) {
            index += 4
            return true
        }
        if bytes[index...].starts(with: "false".utf8) {
            index += 5
            return false
        }
        throw error("true or false expected")
    }

    /// Consumes `null` when it is next.
    mutating func null() -> Bool {
        skipWhitespace()
        guard bytes[index...].starts(with: "null".utf8) else { return false }
        index += 4
        return true
    }

    /// number = [ minus ] int [ frac ] [ exp ] (§6).
    mutating func number() throws(PackageIndexError) {
        skipWhitespace()
        if peek == UInt8(ascii: "-") { index += 1 }
        guard let first = peek, ASCII.isDigit(first) else { throw error("a number without digits") }
        index += 1
        if first != 0x30 { skipDigits() }
        if peek == UInt8(ascii: ".") {
            index += 1
            guard let byte = peek, ASCII.isDigit(byte) else { throw error("a fraction without digits") }
            skipDigits()
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            index += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
            guard let byte = peek, ASCII.isDigit(byte) else { throw error("an exponent without digits") }
            skipDigits()
        }
    }

    mutating func skipDigits() {
        while let byte = peek, ASCII.isDigit(byte) { index += 1 }
    }

    /// Reads past one value of any kind, checking it.
    mutating func skip() throws(PackageIndexError) {
        switch try kind() {
        case .object:
            try beginObject()
            var first = true
            while try member(&first) != nil { try skip() }
        case .array:
            try beginArray()
            var first = true
            while try element(&first) { try skip() }
        case .string: _ = try string()
        case .number: try number()
        case .bool: _ = try bool()
        case .null: guard null() else { throw error("null expected") }
        }
    }

    /// Only whitespace is left.
    mutating func end() throws(PackageIndexError) {
        skipWhitespace()
        guard index == bytes.count else { throw error("text after the JSON value") }
    }
}
