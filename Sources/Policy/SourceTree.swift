import Yams

/// A parsed policy file before validation, the same for YAML and JSON: every node knows its
/// line, every mapping keeps its keys in order, duplicates included (the builder refuses them).
struct SourceNode {
    enum Scalar: Equatable {
        case string  // quoted
        case plain  // unquoted YAML text that is no number, boolean or null
        case number
        case boolean
        case null
    }

    enum Value {
        case scalar(String, Scalar)
        case sequence([SourceNode])
        case mapping([(key: String, line: Int, value: SourceNode)])
    }

    var value: Value
    var line: Int

    /// Nodes one file may have, aliases expanded: a guard against YAML alias bombs.
    static let maximumNodes = 100_000
    static let maximumDepth = 64
}

/// Why a file could not be read as a tree; the builder adds the file name.
struct SyntaxError: Error {
    var line: Int
    var message: String
}

// MARK: YAML (Yams/libyaml)

enum YAMLReader {
    static func read(_ text: String) throws(SyntaxError) -> SourceNode? {
        // Bounded first, on libyaml's events: the composer below recurses per level.
        try YAMLShape.check(text, maximumDepth: SourceNode.maximumDepth, maximumNodes: SourceNode.maximumNodes)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw describe(error)
        } catch {
            throw SyntaxError(line: 1, message: "not valid YAML")
        }
        guard let root else { return nil }
        var budget = SourceNode.maximumNodes
        return try convert(root, depth: 0, budget: &budget)
    }

    private static func convert(_ node: Node, depth: Int, budget: inout Int) throws(SyntaxError) -> SourceNode {
        let line = node.mark?.line ?? 1
        budget -= 1
        guard budget >= 0 else { throw SyntaxError(line: line, message: "too many nodes (more than \(SourceNode.maximumNodes), aliases expanded)") }
        guard depth < SourceNode.maximumDepth else { throw SyntaxError(line: line, message: "nested too deeply") }
        switch node {
        case .scalar(let scalar):
            if scalar.style != .plain { return SourceNode(value: .scalar(scalar.string, .string), line: line) }
            return SourceNode(value: .scalar(scalar.string, classify(scalar.string)), line: line)
        case .sequence(let sequence):
            var items: [SourceNode] = []
            for item in sequence { items.append(try convert(item, depth: depth + 1, budget: &budget)) }
            return SourceNode(value: .sequence(items), line: line)
        case .mapping(let mapping):
            var pairs: [(key: String, line: Int, value: SourceNode)] = []
            for (key, value) in mapping {
                guard case .scalar(let scalar) = key else {
                    throw SyntaxError(line: key.mark?.line ?? line, message: "a mapping key must be a plain name, not a list or mapping")
                }
                pairs.append((scalar.string, key.mark?.line ?? line, try convert(value, depth: depth + 1, budget: &budget)))
            }
            return SourceNode(value: .mapping(pairs), line: line)
        }
    }

    /// YAML 1.2 core schema for plain scalars, less its octal/hex/.inf forms: those stay text.
    static func classify(_ text: String) -> SourceNode.Scalar {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE", "false", "False", "FALSE": return .boolean
        default: return JSONReader.isNumber(Array(text.utf8)) ? .number : .plain
        }
    }

    private static func describe(_ error: YamlError) -> SyntaxError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            let what = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
            return SyntaxError(line: mark.line, message: "not valid YAML: \(what)")
        case .composer(let context, let problem, let mark, _):
            let what = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
            return SyntaxError(line: mark.line, message: "not valid YAML: \(what)")
        case .reader(let problem, _, _, _):
            return SyntaxError(line: 1, message: "not valid YAML: \(problem)")
        default:
            return SyntaxError(line: 1, message: "not valid YAML")
        }
    }
}

// MARK: JSON (RFC 8259), read here so that lines, duplicates and escapes are exact

struct JSONReader {
    private let bytes: [UInt8]
    private var index = 0
    private var line = 1
    private var budget = SourceNode.maximumNodes

    static func read(_ text: String) throws(SyntaxError) -> SourceNode {
        var reader = JSONReader(bytes: Array(text.utf8))
        if reader.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { reader.index = 3 }
        reader.skipSpace()
        let root = try reader.value(depth: 0)
        reader.skipSpace()
        guard reader.index == reader.bytes.count else { throw reader.error("unexpected text after the JSON value") }
        return root
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func error(_ message: String) -> SyntaxError { SyntaxError(line: line, message: "not valid JSON: \(message)") }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipSpace() {
        while let b = current, b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D {
            if b == 0x0A { line += 1 }
            index += 1
        }
    }

    private mutating func value(depth: Int) throws(SyntaxError) -> SourceNode {
        budget -= 1
        guard budget >= 0 else { throw error("too many values") }
        guard depth < SourceNode.maximumDepth else { throw error("nested too deeply") }
        let start = line
        guard let b = current else { throw error("unexpected end of input") }
        switch b {
        case UInt8(ascii: "{"):
            index += 1
            var pairs: [(key: String, line: Int, value: SourceNode)] = []
            skipSpace()
            if current == UInt8(ascii: "}") {
                index += 1
                return SourceNode(value: .mapping(pairs), line: start)
            }
            while true {
                skipSpace()
                guard current == UInt8(ascii: "\"") else { throw error("expected a quoted key") }
                let keyLine = line
                let key = try string()
                skipSpace()
                guard current == UInt8(ascii: ":") else { throw error("expected \":\" after a key") }
                index += 1
                skipSpace()
                pairs.append((key, keyLine, try value(depth: depth + 1)))
                skipSpace()
                if current == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard current == UInt8(ascii: "}") else { throw error("expected \",\" or \"}\"") }
                index += 1
                return SourceNode(value: .mapping(pairs), line: start)
            }
        case UInt8(ascii: "["):
            index += 1
            var items: [SourceNode] = []
            skipSpace()
            if current == UInt8(ascii: "]") {
                index += 1
                return SourceNode(value: .sequence(items), line: start)
            }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                if current == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard current == UInt8(ascii: "]") else { throw error("expected \",\" or \"]\"") }
                index += 1
                return SourceNode(value: .sequence(items), line: start)
            }
        case UInt8(ascii: "\""):
            return SourceNode(value: .scalar(try string(), .string), line: start)
        default:
            var end = index
            while end < bytes.count, !Self.delimiters.contains(bytes[end]) { end += 1 }
            let word = Array(bytes[index..<end])
            let text = String(decoding: word, as: UTF8.self)
            let kind: SourceNode.Scalar
            switch text {
            case "true", "false": kind = .boolean
            case "null": kind = .null
            default:
                guard Self.isNumber(word) else { throw error(word.isEmpty ? "unexpected \(quoted(String(UnicodeScalar(b))))" : "unexpected \(quoted(text))") }
                kind = .number
            }
            index = end
            return SourceNode(value: .scalar(text, kind), line: start)
        }
    }

    private static let delimiters: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), UInt8(ascii: ":")]

    /// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    static func isNumber(_ s: [UInt8]) -> Bool {
        var i = 0
        func digits() -> Int {
            let start = i
            while i < s.count, s[i] >= UInt8(ascii: "0"), s[i] <= UInt8(ascii: "9") { i += 1 }
            return i - start
        }
        if i < s.count, s[i] == UInt8(ascii: "-") { i += 1 }
        let leadingZero = i < s.count && s[i] == UInt8(ascii: "0")
        let integer = digits()
        guard integer > 0, !(leadingZero && integer > 1) else { return false }
        if i < s.count, s[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { return false }
        }
        if i < s.count, s[i] == UInt8(ascii: "e") || s[i] == UInt8(ascii: "E") {
            i += 1
            if i < s.count, s[i] == UInt8(ascii: "+") || s[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { return false }
        }
        return i == s.count
    }

    private mutating func string() throws(SyntaxError) -> String {
        index += 1  // the opening quote
        var out: [UInt8] = []
        while true {
            guard let b = current else { throw error("unterminated string") }
            index += 1
            switch b {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case 0..<0x20:
                throw error("a control character in a string must be escaped")
            case UInt8(ascii: "\\"):
                guard let e = current else { throw error("unterminated string") }
                index += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard current == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                            throw error("a lone surrogate \\u escape")
                        }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("a lone surrogate \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw error("a lone surrogate \\u escape")
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw error("an invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(unicode)).utf8))
                default:
                    throw error("an unknown escape \\\(String(UnicodeScalar(e)))")
                }
            default:
                out.append(b)
            }
        }
    }

    private mutating func hex4() throws(SyntaxError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("a short \\u escape") }
        var value: UInt32 = 0
        for b in bytes[index..<index + 4] {
            guard let digit = UInt32(String(UnicodeScalar(b)), radix: 16) else { throw error("a bad \\u escape") }
            value = value << 4 | digit
        }
        index += 4
        return value
    }
}
