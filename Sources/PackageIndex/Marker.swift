/// PEP 508 environment markers (https://peps.python.org/pep-0508/#environment-markers): a
/// parser of `marker_or` / `marker_and` / `marker_expr` with parentheses, and an evaluator
/// against an `Environment`. Nested groups of one kind are flattened as they are read (`a and
/// (b and c)` is one `and` of three), so that `description` reads back to an equal marker.
public indirect enum Marker: Sendable, Hashable, CustomStringConvertible {
    case and([Marker])
    case or([Marker])
    case compare(MarkerValue, MarkerOperator, MarkerValue)

    /// The longest marker text read; longer is refused before any parsing.
    public static let maximumBytes = 4096
    /// The deepest nesting of parentheses.
    public static let maximumDepth = 32

    public init(parsing text: String) throws(PackageIndexError) {
        guard text.utf8.count <= Marker.maximumBytes else { throw PackageIndexError(.marker, "longer than \(Marker.maximumBytes) bytes") }
        var parser = MarkerParser(tokens: try MarkerParser.tokens(Array(text.utf8)))
        let marker = try parser.or()
        guard parser.index == parser.tokens.count else {
            throw PackageIndexError(.marker, "unexpected \(parser.tokens[parser.index]) after a whole marker")
        }
        self = marker
    }

    /// Whether the marker holds in `environment`. Comparisons follow "Environment Markers": PEP
    /// 440 rules when the right side makes a specifier and the left side is a version, Python's
    /// string comparison otherwise; `extra` compares with both sides normalized (PEP 685). A `~=`
    /// between strings that are not versions is an error.
    public func evaluate(in environment: Environment) throws(PackageIndexError) -> Bool {
        switch self {
        case .and(let markers):
            for marker in markers {
                if try !marker.evaluate(in: environment) { return false }
            }
            return true
        case .or(let markers):
            for marker in markers {
                if try marker.evaluate(in: environment) { return true }
            }
            return false
        case .compare(let lhs, let op, let rhs):
            var left = lhs.value(in: environment), right = rhs.value(in: environment)
            if lhs == .variable(.extra) || rhs == .variable(.extra) {
                left = ProjectName.normalize(left)
                right = ProjectName.normalize(right)
            }
            return try Marker.compare(left, op, right)
        }
    }

    static func compare(_ left: String, _ op: MarkerOperator, _ right: String) throws(PackageIndexError) -> Bool {
        switch op {
        case .isIn: return contains(right, left)
        case .isNotIn: return !contains(right, left)
        default: break
        }
        // The right side must not carry an operator of its own ("<" and "=3" are not "<=3").
        let startsWithOperator = right.utf8.first.map { Array("<>=!~".utf8).contains($0) } ?? false
        if !startsWithOperator, let specifier = try? Specifier(parsing: op.rawValue + right), let version = try? Version(parsing: left) {
            return specifier.admits(version)
        }
        switch op {
        case .equal: return ASCII.same(left, right)
        case .notEqual: return !ASCII.same(left, right)
        case .less: return ASCII.precedes(left, right)
        case .lessOrEqual: return !ASCII.precedes(right, left)
        case .greater: return ASCII.precedes(right, left)
        case .greaterOrEqual: return !ASCII.precedes(left, right)
        case .arbitrary: return ASCII.same(ASCII.lowercased(left), ASCII.lowercased(right))
        case .compatible, .isIn, .isNotIn:
            throw PackageIndexError(.marker, "\(ASCII.quote(left)) \(op.rawValue) \(ASCII.quote(right)): ~= compares versions only")
        }
    }

    /// Python's `needle in haystack` for strings: a substring.
    static func contains(_ haystack: String, _ needle: String) -> Bool {
        let h = Array(haystack.utf8), n = Array(needle.utf8)
        guard n.count <= h.count else { return false }
        if n.isEmpty { return true }
        for start in 0...(h.count - n.count) where h[start..<(start + n.count)].elementsEqual(n) { return true }
        return false
    }

    public var description: String {
        switch self {
        case .and(let markers):
            return markers.map { marker in
                if case .or = marker { return "(\(marker))" }
                return marker.description
            }.joined(separator: " and ")
        case .or(let markers):
            return markers.map(\.description).joined(separator: " or ")
        case .compare(let lhs, let op, let rhs):
            return "\(lhs) \(op.rawValue) \(rhs)"
        }
    }
}

/// `marker_var`: a variable or a quoted string.
public enum MarkerValue: Sendable, Hashable, CustomStringConvertible {
    case variable(MarkerVariable)
    case literal(String)

    func value(in environment: Environment) -> String {
        switch self {
        case .variable(let variable): environment.value(of: variable)
        case .literal(let text): text
        }
    }

    /// Quoted with `"` unless the text holds one (it cannot hold both).
    public var description: String {
        switch self {
        case .variable(let variable): variable.rawValue
        case .literal(let text): text.utf8.contains(UInt8(ascii: "\"")) ? "'\(text)'" : "\"\(text)\""
        }
    }
}

/// `env_var` ("Environment Markers").
public enum MarkerVariable: String, Sendable, Hashable, CaseIterable {
    case pythonVersion = "python_version"
    case pythonFullVersion = "python_full_version"
    case osName = "os_name"
    case sysPlatform = "sys_platform"
    case platformRelease = "platform_release"
    case platformSystem = "platform_system"
    case platformVersion = "platform_version"
    case platformMachine = "platform_machine"
    case platformPythonImplementation = "platform_python_implementation"
    case implementationName = "implementation_name"
    case implementationVersion = "implementation_version"
    case extra = "extra"

    /// A name as written, the legacy dotted spellings (PEP 345's `os.name`, `sys.platform`,
    /// `platform.machine`, ...) and `python_implementation` included.
    init?(named name: String) {
        if let variable = MarkerVariable(rawValue: name) {
            self = variable
            return
        }
        switch name {
        case "os.name": self = .osName
        case "sys.platform": self = .sysPlatform
        case "platform.version": self = .platformVersion
        case "platform.machine": self = .platformMachine
        case "platform.python_implementation", "python_implementation": self = .platformPythonImplementation
        default: return nil
        }
    }
}

/// `marker_op`: `version_cmp`, `in`, `not in`.
public enum MarkerOperator: String, Sendable, Hashable, CaseIterable {
    case lessOrEqual = "<="
    case less = "<"
    case notEqual = "!="
    case equal = "=="
    case greaterOrEqual = ">="
    case greater = ">"
    case compatible = "~="
    case arbitrary = "==="
    case isIn = "in"
    case isNotIn = "not in"
}

/// The tokens and the recursive descent over them: or → and → expression, with parentheses
/// counted against `Marker.maximumDepth`.
struct MarkerParser {
    enum Token: Equatable, CustomStringConvertible {
        case open, close
        case string(String)
        case word(String)
        case op(String)

        var description: String {
            switch self {
            case .open: "\"(\""
            case .close: "\")\""
            case .string(let text): "the string " + ASCII.quote(text)
            case .word(let word): ASCII.quote(word)
            case .op(let op): ASCII.quote(op)
            }
        }
    }

    let tokens: [Token]
    var index = 0
    var depth = 0

    init(tokens: [Token]) { self.tokens = tokens }

    /// `python_str_c` plus the other quote: what a quoted string may hold.
    static func isStringByte(_ byte: UInt8) -> Bool {
        ASCII.isAlphanumeric(byte) || byte == 0x20 || byte == 0x09 || Array("().{}-_*#:;,/?[]!~`@$%^&=+|<>".utf8).contains(byte)
    }

    static func tokens(_ bytes: [UInt8]) throws(PackageIndexError) -> [Token] {
        var tokens: [Token] = []
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case 0x20, 0x09:
                index += 1
            case UInt8(ascii: "("):
                tokens.append(.open)
                index += 1
            case UInt8(ascii: ")"):
                tokens.append(.close)
                index += 1
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                let start = index + 1
                var end = start
                while end < bytes.count, bytes[end] != byte {
                    guard isStringByte(bytes[end]) || bytes[end] == UInt8(ascii: "\"") || bytes[end] == UInt8(ascii: "'") else {
                        throw PackageIndexError(.marker, "a quoted string holds \(ASCII.quote([bytes[end]])), which PEP 508's python_str does not allow")
                    }
                    end += 1
                }
                guard end < bytes.count else { throw PackageIndexError(.marker, "a quoted string is not closed") }
                tokens.append(.string(String(decoding: bytes[start..<end], as: UTF8.self)))
                index = end + 1
            case UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "="), UInt8(ascii: "!"), UInt8(ascii: "~"):
                guard let op = ["===", "==", "!=", "<=", ">=", "~=", "<", ">"].first(where: { bytes[index...].starts(with: $0.utf8) }) else {
                    throw PackageIndexError(.marker, "\(ASCII.quote(bytes[index...].prefix(3))) is not a comparison operator")
                }
                tokens.append(.op(op))
                index += op.utf8.count
            default:
                guard ASCII.isAlphanumeric(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") else {
                    throw PackageIndexError(.marker, "unexpected \(ASCII.quote([byte])) at byte \(index)")
                }
                let start = index
                while index < bytes.count, ASCII.isAlphanumeric(bytes[index]) || bytes[index] == UInt8(ascii: "_") || bytes[index] == UInt8(ascii: ".") {
                    index += 1
                }
                tokens.append(.word(String(decoding: bytes[start..<index], as: UTF8.self)))
            }
        }
        return tokens
    }

    var peek: Token? { index < tokens.count ? tokens[index] : nil }

    /// `marker_or = marker_and ('or' marker_and)*`.
    mutating func or() throws(PackageIndexError) -> Marker {
        var items: [Marker] = []
        repeat {
            if !items.isEmpty { index += 1 }
            let item = try and()
            if case .or(let inner) = item { items += inner } else { items.append(item) }
        } while peek == .word("or")
        return items.count == 1 ? items[0] : .or(items)
    }

    /// `marker_and = marker_expr ('and' marker_expr)*`.
    mutating func and() throws(PackageIndexError) -> Marker {
        var items: [Marker] = []
        repeat {
            if !items.isEmpty { index += 1 }
            let item = try expression()
            if case .and(let inner) = item { items += inner } else { items.append(item) }
        } while peek == .word("and")
        return items.count == 1 ? items[0] : .and(items)
    }

    /// `marker_expr = marker_var marker_op marker_var | '(' marker ')'`.
    mutating func expression() throws(PackageIndexError) -> Marker {
        if peek == .open {
            guard depth < Marker.maximumDepth else { throw PackageIndexError(.marker, "parentheses nested deeper than \(Marker.maximumDepth)") }
            depth += 1
            index += 1
            let inner = try or()
            guard peek == .close else { throw PackageIndexError(.marker, "a \"(\" is not closed") }
            index += 1
            depth -= 1
            return inner
        }
        let lhs = try value()
        let op = try comparison()
        let rhs = try value()
        return .compare(lhs, op, rhs)
    }

    mutating func value() throws(PackageIndexError) -> MarkerValue {
        guard let token = peek else { throw PackageIndexError(.marker, "the marker ends where a variable or a quoted string should be") }
        index += 1
        switch token {
        case .string(let text): return .literal(text)
        case .word(let name):
            guard let variable = MarkerVariable(named: name) else {
                throw PackageIndexError(.marker, "\(ASCII.quote(name)) is not a marker variable (python_version, sys_platform, extra, ...)")
            }
            return .variable(variable)
        default:
            throw PackageIndexError(.marker, "\(token) where a variable or a quoted string should be")
        }
    }

    mutating func comparison() throws(PackageIndexError) -> MarkerOperator {
        guard let token = peek else { throw PackageIndexError(.marker, "the marker ends where an operator should be") }
        index += 1
        switch token {
        case .op(let text):
            if let op = MarkerOperator(rawValue: text) { return op }
        case .word("in"):
            return .isIn
        case .word("not"):
            if peek == .word("in") {
                index += 1
                return .isNotIn
            }
        default: break
        }
        throw PackageIndexError(.marker, "\(token) where an operator (<, <=, ==, !=, >=, >, ~=, ===, in, not in) should be")
    }
}
