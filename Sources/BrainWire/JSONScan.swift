/// A strict, bounded JSON validator (RFC 8259) that never builds a tree: it checks a whole
/// document and reports where the members of its top-level object (or the elements of its
/// top-level array) lie, so that a caller reads the few values it needs and splices the rest of
/// the bytes through unchanged.
///
/// Ranges are indices of the slice that was scanned, which an `ArraySlice` shares with its base:
/// scanning `document[member.valueRange]` gives ranges in the document's own index space.
public enum JSONScan {
    /// The deepest nesting of objects and arrays accepted; one more is an error.
    public static let maximumDepth = 64
    /// The most members or elements one scan reports (the nested ones are validated, not kept).
    public static let maximumEntries = 4096

    /// Validates `bytes` as one JSON text (§2: whitespace, one value, whitespace) and returns
    /// where its value lies and what kind it is.
    public static func validate(_ bytes: ArraySlice<UInt8>) -> Result<JSONElement, JSONError> {
        var scanner = JSONScanner(bytes)
        return Result { () throws(JSONError) in try scanner.document(collect: false).value }
    }

    /// Validates `bytes` as one JSON text whose value is an object, and returns its members in
    /// order, duplicates included (§4: names SHOULD be unique; readers then disagree).
    public static func object(_ bytes: ArraySlice<UInt8>) -> Result<JSONObject, JSONError> {
        var scanner = JSONScanner(bytes)
        return Result { () throws(JSONError) in
            let scanned = try scanner.document(collect: true)
            guard scanned.value.kind == .object else { throw JSONError(0, "the value is \(scanned.value.kind.article), not an object") }
            return JSONObject(range: scanned.value.valueRange, members: scanned.members)
        }
    }

    /// Validates `bytes` as one JSON text whose value is an array, and returns its elements.
    public static func array(_ bytes: ArraySlice<UInt8>) -> Result<[JSONElement], JSONError> {
        var scanner = JSONScanner(bytes)
        return Result { () throws(JSONError) in
            let scanned = try scanner.document(collect: true)
            guard scanned.value.kind == .array else { throw JSONError(0, "the value is \(scanned.value.kind.article), not an array") }
            return scanned.elements
        }
    }

    /// The string that `bytes` holds exactly (one string token, no whitespace), unescaped; nil
    /// for anything else.
    public static func string(_ bytes: ArraySlice<UInt8>) -> String? {
        guard bytes.first == 0x22 else { return nil }
        var scanner = JSONScanner(bytes)
        guard let text = try? scanner.string(decode: true), scanner.index == bytes.endIndex else { return nil }
        return text
    }

    /// The integer that `bytes` holds exactly: `-?(0|[1-9][0-9]*)` (§6) with no fraction or
    /// exponent, within `Int`; nil for anything else, 1.0 and 1e2 included.
    public static func integer(_ bytes: ArraySlice<UInt8>) -> Int? {
        var digits = bytes
        let negative = digits.first == UInt8(ascii: "-")
        if negative { digits = digits.dropFirst() }
        guard let first = digits.first, isDigit(first), first != 0x30 || digits.count == 1, digits.allSatisfy(isDigit) else { return nil }
        var value = 0
        for digit in digits {
            // Negative numbers are built downwards, so that Int.min fits.
            let (shifted, overflow) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = negative ? shifted.subtractingReportingOverflow(Int(digit - 0x30)) : shifted.addingReportingOverflow(Int(digit - 0x30))
            guard !overflow, !overflow2 else { return nil }
            value = next
        }
        return value
    }

    /// `true` or `false` exactly (§3); nil for anything else.
    public static func bool(_ bytes: ArraySlice<UInt8>) -> Bool? {
        if bytes.elementsEqual("true".utf8) { return true }
        if bytes.elementsEqual("false".utf8) { return false }
        return nil
    }

    /// Whether `bytes` is exactly `null`.
    public static func isNull(_ bytes: ArraySlice<UInt8>) -> Bool { bytes.elementsEqual("null".utf8) }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
}

/// The six kinds of JSON value (RFC 8259 §3).
public enum JSONKind: Sendable, Equatable {
    case object, array, string, number, bool, null

    var article: String {
        switch self {
        case .object: "an object"
        case .array: "an array"
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .null: "null"
        }
    }
}

/// One member of an object: its name as decoded, and where the name's token and the value lie.
public struct JSONMember: Sendable, Equatable {
    public let key: String
    /// The name's string token, quotes included.
    public let keyRange: Range<Int>
    public let valueRange: Range<Int>
    public let kind: JSONKind

    /// Whether the decoded name is `name`, compared as code points (not as Swift's canonically
    /// equivalent strings, which would take U+212A KELVIN SIGN for "K").
    public func isNamed(_ name: String) -> Bool { key.utf8.elementsEqual(name.utf8) }
}

/// One value of an array, or a whole document's value.
public struct JSONElement: Sendable, Equatable {
    public let valueRange: Range<Int>
    public let kind: JSONKind
}

/// An object's members in order, duplicates kept, and where its braces are.
public struct JSONObject: Sendable, Equatable {
    /// From `{` to `}` inclusive.
    public let range: Range<Int>
    public let members: [JSONMember]

    /// Every member named `name`, in order.
    public func members(named name: String) -> [JSONMember] { members.filter { $0.isNamed(name) } }

    /// The one member named `name`, nil when there is none; an error naming it when there are
    /// several (two readers could take different ones).
    public func member(named name: String) -> Result<JSONMember?, JSONError> {
        let found = members(named: name)
        guard found.count <= 1 else { return .failure(JSONError(found[1].keyRange.lowerBound - range.lowerBound, "the member \"\(name)\" appears \(found.count) times")) }
        return .success(found.first)
    }

    /// Where the member `"key":value` (given as bytes) goes to become the object's last, and
    /// the bytes to insert there: after the last member with a comma, or just after `{`.
    public func insertion(of member: [UInt8]) -> (at: Int, bytes: [UInt8]) {
        if let last = members.last { return (last.valueRange.upperBound, [UInt8(ascii: ",")] + member) }
        return (range.lowerBound + 1, member)
    }
}

/// Why a document is not JSON, and the byte (from the scanned slice's start) where it stopped.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public let offset: Int
    public let reason: String

    init(_ offset: Int, _ reason: String) {
        self.offset = offset
        self.reason = reason
    }

    public var description: String { "\(reason) at byte \(offset)" }
}

/// The recursive-descent scanner: each function starts at its token's first byte and leaves
/// `index` just past it.
struct JSONScanner {
    let bytes: ArraySlice<UInt8>
    var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    func error(_ reason: String) -> JSONError { JSONError(index - bytes.startIndex, reason) }

    /// JSON-text = ws value ws (§2); the top-level container's entries collected when asked.
    mutating func document(collect: Bool) throws(JSONError) -> (value: JSONElement, members: [JSONMember], elements: [JSONElement]) {
        skipWhitespace()
        var members: [JSONMember] = []
        var elements: [JSONElement] = []
        let start = index
        let kind: JSONKind
        if collect && peek == UInt8(ascii: "{") {
            kind = .object
            try object(depth: 1, collect: true, members: &members)
        } else if collect && peek == UInt8(ascii: "[") {
            kind = .array
            try array(depth: 1, collect: true, elements: &elements)
        } else {
            kind = try value(depth: 0)
        }
        let value = JSONElement(valueRange: start..<index, kind: kind)
        skipWhitespace()
        guard index == bytes.endIndex else { throw error("text after the JSON value") }
        return (value, members, elements)
    }

    var peek: UInt8? { index < bytes.endIndex ? bytes[index] : nil }

    /// ws = *( %x20 / %x09 / %x0A / %x0D ) (§2).
    mutating func skipWhitespace() {
        while let byte = peek, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
    }

    /// value = false / null / true / object / array / number / string (§3); `depth` is how many
    /// containers hold it.
    mutating func value(depth: Int) throws(JSONError) -> JSONKind {
        guard let byte = peek else { throw error("the text ends where a value should be") }
        switch byte {
        case UInt8(ascii: "{"):
            var unkept: [JSONMember] = []
            try object(depth: depth + 1, collect: false, members: &unkept)
            return .object
        case UInt8(ascii: "["):
            var unkept: [JSONElement] = []
            try array(depth: depth + 1, collect: false, elements: &unkept)
            return .array
        case 0x22:
            _ = try string(decode: false)
            return .string
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "-"), 0x30...0x39:
            try number()
            return .number
        default:
            throw error("a value cannot start with \(JSONScanner.describe(byte))")
        }
    }

    mutating func literal(_ word: String) throws(JSONError) {
        let count = word.utf8.count
        guard bytes.endIndex - index >= count, bytes[index..<(index + count)].elementsEqual(word.utf8) else {
            throw error("not a literal true, false or null")
        }
        index += count
    }

    /// object = begin-object [ member *( value-separator member ) ] end-object (§4); the
    /// members kept (names decoded) only when `collect`.
    mutating func object(depth: Int, collect: Bool, members: inout [JSONMember]) throws(JSONError) {
        guard depth <= JSONScan.maximumDepth else { throw error("nesting deeper than \(JSONScan.maximumDepth)") }
        index += 1
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            guard peek == 0x22 else { throw error("an object member does not start with a string name") }
            let keyStart = index
            let key = try string(decode: collect)
            let keyRange = keyStart..<index
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else { throw error("no \":\" after a member name") }
            index += 1
            skipWhitespace()
            let valueStart = index
            let kind = try value(depth: depth)
            if collect {
                guard members.count < JSONScan.maximumEntries else { throw error("an object with more than \(JSONScan.maximumEntries) members") }
                members.append(JSONMember(key: key ?? "", keyRange: keyRange, valueRange: valueStart..<index, kind: kind))
            }
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","):
                index += 1
                skipWhitespace()
            case UInt8(ascii: "}"):
                index += 1
                return
            default:
                throw error("no \",\" or \"}\" after an object member")
            }
        }
    }

    /// array = begin-array [ value *( value-separator value ) ] end-array (§5); the elements
    /// kept only when `collect`.
    mutating func array(depth: Int, collect: Bool, elements: inout [JSONElement]) throws(JSONError) {
        guard depth <= JSONScan.maximumDepth else { throw error("nesting deeper than \(JSONScan.maximumDepth)") }
        index += 1
        skipWhitespace()
        if peek == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            let valueStart = index
            let kind = try value(depth: depth)
            if collect {
                guard elements.count < JSONScan.maximumEntries else { throw error("an array with more than \(JSONScan.maximumEntries) elements") }
                elements.append(JSONElement(valueRange: valueStart..<index, kind: kind))
            }
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","):
                index += 1
                skipWhitespace()
            case UInt8(ascii: "]"):
                index += 1
                return
            default:
                throw error("no \",\" or \"]\" after an array element")
            }
        }
    }

    /// number = [ minus ] int [ frac ] [ exp ] (§6); int has no leading zeros.
    mutating func number() throws(JSONError) {
        if peek == UInt8(ascii: "-") { index += 1 }
        guard let first = peek, JSONScan.isDigit(first) else { throw error("a number without digits") }
        index += 1
        if first != 0x30 {
            while let byte = peek, JSONScan.isDigit(byte) { index += 1 }
        }
        if peek == UInt8(ascii: ".") {
            index += 1
            try digits("a fraction without digits")
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            index += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
            try digits("an exponent without digits")
        }
    }

    mutating func digits(_ problem: String) throws(JSONError) {
        guard let byte = peek, JSONScan.isDigit(byte) else { throw error(problem) }
        while let byte = peek, JSONScan.isDigit(byte) { index += 1 }
    }

    /// string = quotation-mark *char quotation-mark (§7), its UTF-8 checked (§8.1: RFC 3629, no
    /// overlong forms, no surrogates, nothing past U+10FFFF) and its \u escapes paired (§7, §8.2:
    /// a lone surrogate names no character and is refused). Decoded only when asked.
    mutating func string(decode: Bool) throws(JSONError) -> String? {
        index += 1
        var text = String.UnicodeScalarView()
        while true {
            guard let byte = peek else { throw error("a string is not closed") }
            switch byte {
            case 0x22:
                index += 1
                return decode ? String(text) : nil
            case 0x5C:
                let scalar = try escape()
                if decode { text.append(scalar) }
            case 0x00..<0x20:
                throw error("a control character \(JSONScanner.describe(byte)) in a string (§7: it must be escaped)")
            case 0x20..<0x80:
                index += 1
                if decode { text.append(Unicode.Scalar(byte)) }
            default:
                let scalar = try utf8Sequence()
                if decode { text.append(scalar) }
            }
        }
    }

    /// One escape after its backslash (§7).
    mutating func escape() throws(JSONError) -> Unicode.Scalar {
        index += 1
        guard let byte = peek else { throw error("a string ends inside an escape") }
        index += 1
        switch byte {
        case 0x22, 0x5C, 0x2F: return Unicode.Scalar(byte)
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            let unit = try hex4()
            switch unit {
            case 0xD800...0xDBFF:
                // A high surrogate must be followed by an escaped low one: together one scalar.
                guard bytes.endIndex - index >= 2, bytes[index] == 0x5C, bytes[index + 1] == UInt8(ascii: "u") else {
                    throw error("a lone high surrogate \\u\(String(unit, radix: 16)) (§8.2)")
                }
                index += 2
                let low = try hex4()
                guard (0xDC00...0xDFFF).contains(low) else { throw error("a high surrogate not followed by a low one (§8.2)") }
                return Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))!
            case 0xDC00...0xDFFF:
                throw error("a lone low surrogate \\u\(String(unit, radix: 16)) (§8.2)")
            default:
                return Unicode.Scalar(unit)!
            }
        default:
            throw error("an unknown escape \\\(JSONScanner.describe(byte))")
        }
    }

    mutating func hex4() throws(JSONError) -> UInt32 {
        guard bytes.endIndex - index >= 4 else { throw error("a \\u escape without four hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case 0x30...0x39: digit = byte - 0x30
            case 0x41...0x46: digit = byte - 0x41 + 10
            case 0x61...0x66: digit = byte - 0x61 + 10
            default: throw error("a \\u escape without four hex digits")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    /// One multi-byte UTF-8 sequence (RFC 3629 §4), its lead byte at `index`.
    mutating func utf8Sequence() throws(JSONError) -> Unicode.Scalar {
        let lead = bytes[index]
        let count: Int
        var scalar: UInt32
        // The second byte's range depends on the lead: that rules out overlongs and surrogates.
        var low: UInt8 = 0x80, high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: count = 2; scalar = UInt32(lead & 0x1F)
        case 0xE0: count = 3; scalar = UInt32(lead & 0x0F); low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: count = 3; scalar = UInt32(lead & 0x0F)
        case 0xED: count = 3; scalar = UInt32(lead & 0x0F); high = 0x9F
        case 0xF0: count = 4; scalar = UInt32(lead & 0x07); low = 0x90
        case 0xF1...0xF3: count = 4; scalar = UInt32(lead & 0x07)
        case 0xF4: count = 4; scalar = UInt32(lead & 0x07); high = 0x8F
        default: throw error("invalid UTF-8 (lead byte \(JSONScanner.describe(lead)))")
        }
        guard bytes.endIndex - index >= count else { throw error("UTF-8 cut short") }
        for offset in 1..<count {
            let byte = bytes[index + offset]
            guard byte >= low && byte <= high else { throw error("invalid UTF-8 (continuation byte \(JSONScanner.describe(byte)))") }
            low = 0x80
            high = 0xBF
            scalar = scalar << 6 | UInt32(byte & 0x3F)
        }
        index += count
        guard let value = Unicode.Scalar(scalar) else { throw error("invalid UTF-8") }
        return value
    }

    static func describe(_ byte: UInt8) -> String {
        if byte >= 0x21 && byte < 0x7F { return "\"\(Unicode.Scalar(byte))\"" }
        return "0x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
    }
}
