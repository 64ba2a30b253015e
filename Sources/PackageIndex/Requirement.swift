/// A PEP 508 dependency specifier (https://peps.python.org/pep-0508/, "Grammar"):
/// `name [extras] (versionspec | @ url) ; marker`, as an agent asks for a package and as a
/// wheel's `Requires-Dist` names its dependencies.
public struct Requirement: Sendable, Hashable, CustomStringConvertible {
    /// The longest text read; longer is refused before any parsing.
    public static let maximumBytes = 4096
    /// The most extras in `[...]`.
    public static let maximumExtras = 64

    /// The name as written (valid: see `ProjectName`).
    public let name: String
    /// The extras as written, in order.
    public let extras: [String]
    /// Empty when none is given, or with a URL.
    public let specifiers: SpecifierSet
    /// A direct reference (`name @ url`), as written.
    public let url: String?
    public let marker: Marker?

    /// The name as PEP 503 normalizes it: what two spellings of one project share.
    public var normalizedName: String { ProjectName.normalize(name) }
    /// The extras normalized (PEP 685).
    public var normalizedExtras: [String] { extras.map(ProjectName.normalize) }

    public init(parsing text: String) throws(PackageIndexError) {
        guard text.utf8.count <= Requirement.maximumBytes else {
            throw PackageIndexError(.requirement, "longer than \(Requirement.maximumBytes) bytes")
        }
        var reader = RequirementReader(bytes: Array(text.utf8))
        reader.skipSpaces()
        name = try reader.name()
        reader.skipSpaces()
        extras = try reader.peek == UInt8(ascii: "[") ? reader.extras() : []
        reader.skipSpaces()
        var url: String?
        var specifiers = SpecifierSet()
        switch reader.peek ?? 0 {
        case UInt8(ascii: "@"):
            reader.index += 1
            reader.skipSpaces()
            // "url_req = name wsp* extras? wsp* urlspec wsp+ quoted_marker?": the URL runs to
            // whitespace (it may hold ";"), so a marker after it always has a space before it.
            url = try reader.url()
        case UInt8(ascii: "("):
            specifiers = try reader.parenthesizedSpecifiers()
        case UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "="), UInt8(ascii: "!"), UInt8(ascii: "~"):
            specifiers = try reader.specifiersUpToMarker()
        default:
            break
        }
        reader.skipSpaces()
        var marker: Marker?
        if reader.peek == UInt8(ascii: ";") {
            let rest = reader.bytes[(reader.index + 1)...]
            guard !ASCII.trimmed(rest).isEmpty else { throw PackageIndexError(.requirement, "nothing after \";\"") }
            marker = try Marker(parsing: String(decoding: rest, as: UTF8.self))
            reader.index = reader.bytes.count
        }
        guard reader.index == reader.bytes.count else {
            throw PackageIndexError(.requirement, "unexpected \(ASCII.quote(reader.bytes[reader.index...])) at byte \(reader.index)")
        }
        self.url = url
        self.specifiers = specifiers
        self.marker = marker
    }

    /// Whether the requirement applies in `environment` when the named extras of the package
    /// that needs it are installed: its marker holds with `extra` unset or any of them
    /// (core metadata "Provides-Extra").
    public func applies(in environment: Environment, extras requested: [String] = []) throws(PackageIndexError) -> Bool {
        guard let marker else { return true }
        for extra in [""] + requested {
            if try marker.evaluate(in: environment.with(extra: extra)) { return true }
        }
        return false
    }

    public var description: String {
        var text = name
        if !extras.isEmpty { text += "[" + extras.joined(separator: ",") + "]" }
        if let url {
            text += " @ " + url
            if marker != nil { text += " " }
        } else {
            text += specifiers.description
        }
        if let marker { text += "; " + marker.description }
        return text
    }
}

/// The byte-level reading of a requirement, front to back.
struct RequirementReader {
    let bytes: [UInt8]
    var index = 0

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    /// `wsp* = (' ' | '\t')*`.
    mutating func skipSpaces() {
        while let byte = peek, byte == 0x20 || byte == 0x09 { index += 1 }
    }

    /// `identifier = letterOrDigit identifier_end*`: the run of name characters, then checked.
    mutating func identifier(_ what: String) throws(PackageIndexError) -> String {
        let start = index
        while let byte = peek, ASCII.isAlphanumeric(byte) || ProjectName.isPunctuation(byte) { index += 1 }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        guard index > start else {
            throw PackageIndexError(.requirement, "no \(what) at byte \(start) (found \(ASCII.quote(bytes[start...])))")
        }
        try ProjectName.validate(text, what: what, subject: .requirement)
        return text
    }

    mutating func name() throws(PackageIndexError) -> String { try identifier("project name") }

    /// `extras = '[' wsp* extras_list? wsp* ']'`.
    mutating func extras() throws(PackageIndexError) -> [String] {
        index += 1
        var names: [String] = []
        skipSpaces()
        if peek == UInt8(ascii: "]") {
            index += 1
            return names
        }
        while true {
            skipSpaces()
            guard names.count < Requirement.maximumExtras else { throw PackageIndexError(.requirement, "more than \(Requirement.maximumExtras) extras") }
            names.append(try identifier("extra name"))
            skipSpaces()
            switch peek ?? 0 {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                return names
            default: throw PackageIndexError(.requirement, "the extras are not closed with \"]\"")
            }
        }
    }

    /// `'(' version_many ')'`.
    mutating func parenthesizedSpecifiers() throws(PackageIndexError) -> SpecifierSet {
        index += 1
        guard let close = bytes[index...].firstIndex(of: UInt8(ascii: ")")) else {
            throw PackageIndexError(.requirement, "the version specifiers' \"(\" is not closed")
        }
        let set = try SpecifierSet(parsing: String(decoding: bytes[index..<close], as: UTF8.self))
        index = close + 1
        return set
    }

    /// `version_many` up to a marker's `;` or the end.
    mutating func specifiersUpToMarker() throws(PackageIndexError) -> SpecifierSet {
        let end = bytes[index...].firstIndex(of: UInt8(ascii: ";")) ?? bytes.count
        let set = try SpecifierSet(parsing: String(decoding: bytes[index..<end], as: UTF8.self))
        index = end
        return set
    }

    /// `URI_reference` up to whitespace: printable ASCII, not empty.
    mutating func url() throws(PackageIndexError) -> String {
        let start = index
        while let byte = peek, byte > 0x20, byte < 0x7F { index += 1 }
        guard index > start else { throw PackageIndexError(.requirement, "no URL after \"@\"") }
        if let byte = peek, byte != 0x20, byte != 0x09 {
            throw PackageIndexError(.requirement, "the URL has a control or non-ASCII byte \(ASCII.quote([byte]))")
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }
}
