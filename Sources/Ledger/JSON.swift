/// The little JSON the ledger file needs (RFC 8259), without Foundation: objects keep their
/// key order, and numbers are integers (the ledger has no other kind).
indirect enum JSON: Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.int(let x), .int(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)): x.map(\.0) == y.map(\.0) && x.map(\.1) == y.map(\.1)
        default: false
        }
    }

    // MARK: Writing

    /// Two-space indented text with a final newline.
    func rendered() -> String {
        var out = ""
        write(to: &out, indent: "")
        return out + "\n"
    }

    private func write(to out: inout String, indent: String) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .string(let value): JSON.writeString(value, to: &out)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "[\n"
            for (index, item) in items.enumerated() {
                out += indent + "  "
                item.write(to: &out, indent: indent + "  ")
                out += index == items.count - 1 ? "\n" : ",\n"
            }
            out += indent + "]"
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{\n"
            for (index, (key, value)) in members.enumerated() {
                out += indent + "  "
                JSON.writeString(key, to: &out)
                out += ": "
                value.write(to: &out, indent: indent + "  ")
                out += index == members.count - 1 ? "\n" : ",\n"
            }
            out += indent + "}"
        }
    }

    private static func writeString(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    // MARK: Reading

    /// Nesting deeper than this is refused (the ledger file is 4 levels deep).
    static let maximumDepth = 32

    static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSON {
        var reader = Reader(bytes: bytes)
        reader.skipSpace()
        let value = try reader.value(depth: 0)
        reader.skipSpace()
        guard reader.offset == bytes.count else { throw reader.error("text after the end of the document") }
        return value
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        func error(_ why: String) -> JSONError { JSONError(offset: offset, why: why) }

        var next: UInt8? { offset < bytes.count ? bytes[offset] : nil }

        mutating func skipSpace() {
            while let byte = next, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { offset += 1 }
        }

        mutating func expect(_ literal: String, _ value: JSON) throws(JSONError) -> JSON {
            let literalBytes = Array(literal.utf8)
            guard bytes.count - offset >= literalBytes.count, Array(bytes[offset..<offset + literalBytes.count]) == literalBytes else {
                throw error("expected a value")
            }
            offset += literalBytes.count
            return value
        }

        mutating func value(depth: Int) throws(JSONError) -> JSON {
            guard depth < JSON.maximumDepth else { throw error("nested more than \(JSON.maximumDepth) levels") }
            guard let byte = next else { throw error("the text ends where a value was expected") }
            switch byte {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "n"): return try expect("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .int(try integer())
            default: throw error("expected a value")
            }
        }

        mutating func object(depth: Int) throws(JSONError) -> JSON {
            offset += 1
            var members: [(String, JSON)] = []
            skipSpace()
            if next == UInt8(ascii: "}") { offset += 1; return .object([]) }
            while true {
                skipSpace()
                guard next == UInt8(ascii: "\"") else { throw error("expected a member name in quotes") }
                let keyOffset = offset
                let key = try string()
                guard !members.contains(where: { $0.0 == key }) else {
                    throw JSONError(offset: keyOffset, why: "member \"\(key)\" appears twice")
                }
                skipSpace()
                guard next == UInt8(ascii: ":") else { throw error("expected ':' after a member name") }
                offset += 1
                skipSpace()
                members.append((key, try value(depth: depth + 1)))
                skipSpace()
                switch next {
                case UInt8(ascii: ","): offset += 1
                case UInt8(ascii: "}"): offset += 1; return .object(members)
                default: throw error("expected ',' or '}' in an object")
                }
            }
        }

        mutating func array(depth: Int) throws(JSONError) -> JSON {
            offset += 1
            var items: [JSON] = []
            skipSpace()
            if next == UInt8(ascii: "]") { offset += 1; return .array([]) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                switch next {
                case UInt8(ascii: ","): offset += 1
                case UInt8(ascii: "]"): offset += 1; return .array(items)
                default: throw error("expected ',' or ']' in an array")
                }
            }
        }

        mutating func integer() throws(JSONError) -> Int {
            let start = offset
            if next == UInt8(ascii: "-") { offset += 1 }
            let digits = offset
            while let byte = next, byte >= 0x30, byte <= 0x39 { offset += 1 }
            guard offset > digits else { throw error("expected digits") }
            guard bytes[digits] != 0x30 || offset == digits + 1 else { throw JSONError(offset: start, why: "a number with a leading zero") }
            if let byte = next, byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                throw JSONError(offset: start, why: "a number that is not an integer")
            }
            guard let value = Int(String(decoding: bytes[start..<offset], as: UTF8.self)) else {
                throw JSONError(offset: start, why: "a number too large")
            }
            return value
        }

        mutating func string() throws(JSONError) -> String {
            offset += 1
            var out: [UInt8] = []
            while true {
                guard let byte = next else { throw error("the text ends inside a string") }
                offset += 1
                switch byte {
                case UInt8(ascii: "\""):
                    guard let text = String(validating: out, as: UTF8.self) else { throw error("a string that is not UTF-8") }
                    return text
                case UInt8(ascii: "\\"):
                    guard let escape = next else { throw error("the text ends inside a string") }
                    offset += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"): out.append(contentsOf: try unicodeEscape())
                    default: throw error("an unknown escape \\\(Character(Unicode.Scalar(escape)))")
                    }
                case 0..<0x20: throw error("a control character inside a string")
                default: out.append(byte)
                }
            }
        }

        /// After "\u": four hex digits, a surrogate pair taking two escapes; lone surrogates refused.
        mutating func unicodeEscape() throws(JSONError) -> [UInt8] {
            var value = try hex4()
            if (0xD800..<0xDC00).contains(value) {
                guard next == UInt8(ascii: "\\"), offset + 1 < bytes.count, bytes[offset + 1] == UInt8(ascii: "u") else {
                    throw error("a lone surrogate escape")
                }
                offset += 2
                let low = try hex4()
                guard (0xDC00..<0xE000).contains(low) else { throw error("a lone surrogate escape") }
                value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00..<0xE000).contains(value) {
                throw error("a lone surrogate escape")
            }
            guard let scalar = Unicode.Scalar(value) else { throw error("an escape that is not a character") }
            return Array(String(Character(scalar)).utf8)
        }

        mutating func hex4() throws(JSONError) -> UInt32 {
            let isHex: (UInt8) -> Bool = { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66) }
            guard bytes.count - offset >= 4, bytes[offset..<offset + 4].allSatisfy(isHex),
                  let value = UInt32(String(decoding: bytes[offset..<offset + 4], as: UTF8.self), radix: 16) else {
                throw error("expected four hex digits after \\u")
            }
            offset += 4
            return value
        }
    }
}

/// Where JSON text went wrong: a byte offset and what was found.
struct JSONError: Error, Equatable, CustomStringConvertible {
    let offset: Int
    let why: String
    var description: String { "at byte \(offset): \(why)" }
}
