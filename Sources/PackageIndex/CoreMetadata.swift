/// A wheel's `*.dist-info/METADATA` (core metadata, https://packaging.python.org/en/latest/specifications/core-metadata/):
/// RFC 822-style header fields up to the first blank line, continuation lines folded in; the
/// body (the long description) is not read. The fields the resolver needs are parsed and
/// checked; a field that must appear once and appears twice is refused (two readers could take
/// different ones); unknown fields are skipped.
public struct CoreMetadata: Sendable, Hashable {
    /// The most bytes read; a larger file is refused before any parsing.
    public static let maximumBytes = 1 << 20
    /// The most header lines, continuation lines included.
    public static let maximumHeaderLines = 4096
    public static let maximumRequiresDist = 1024
    public static let maximumProvidesExtra = 256

    /// "Metadata-Version": 1.x or 2.x ("tools MUST fail" on a greater major version).
    public let metadataVersion: String
    public let name: String
    public let version: Version
    /// "Requires-Python"; nil when absent.
    public let requiresPython: SpecifierSet?
    /// "Requires-Dist", in order.
    public let requiresDist: [Requirement]
    /// "Provides-Extra", as written.
    public let providesExtra: [String]

    public init(parsing text: String) throws(PackageIndexError) {
        try self.init(parsing: Array(text.utf8))
    }

    public init(parsing bytes: [UInt8]) throws(PackageIndexError) {
        guard bytes.count <= CoreMetadata.maximumBytes else {
            throw PackageIndexError(.metadata, "longer than \(CoreMetadata.maximumBytes) bytes")
        }
        let fields = try CoreMetadata.headerFields(bytes)
        var metadataVersion: String?, name: String?, version: Version?, requiresPython: SpecifierSet?
        var requiresDist: [Requirement] = []
        var providesExtra: [String] = []
        var seen: Set<String> = []
        for (field, value) in fields {
            let key = ASCII.lowercased(field)
            switch key {
            case "metadata-version", "name", "version", "requires-python":
                guard seen.insert(key).inserted else { throw PackageIndexError(.metadata, "the field \(field) appears more than once") }
            default: break
            }
            switch key {
            case "metadata-version":
                let text = try CoreMetadata.text(value, field)
                let parts = text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
                guard parts.count == 2, let major = ASCII.number(parts[0]), ASCII.number(parts[1]) != nil else {
                    throw PackageIndexError(.metadata, "Metadata-Version \(ASCII.quote(text)) is not MAJOR.MINOR")
                }
                guard major == 1 || major == 2 else {
                    throw PackageIndexError(.metadata, "Metadata-Version \(text) is newer than the 2.x this reader knows")
                }
                metadataVersion = text
            case "name":
                let text = try CoreMetadata.text(value, field)
                try ProjectName.validate(text, what: "Name", subject: .metadata)
                name = text
            case "version":
                let text = try CoreMetadata.text(value, field)
                version = try CoreMetadata.parse(field) { () throws(PackageIndexError) in try Version(parsing: text) }
            case "requires-python":
                let text = try CoreMetadata.text(value, field)
                requiresPython = try CoreMetadata.parse(field) { () throws(PackageIndexError) in try SpecifierSet(parsing: text) }
            case "requires-dist":
                guard requiresDist.count < CoreMetadata.maximumRequiresDist else {
                    throw PackageIndexError(.metadata, "more than \(CoreMetadata.maximumRequiresDist) Requires-Dist fields")
                }
                let text = try CoreMetadata.text(value, field)
                requiresDist.append(try CoreMetadata.parse(field) { () throws(PackageIndexError) in try Requirement(parsing: text) })
            case "provides-extra":
                guard providesExtra.count < CoreMetadata.maximumProvidesExtra else {
                    throw PackageIndexError(.metadata, "more than \(CoreMetadata.maximumProvidesExtra) Provides-Extra fields")
                }
                let text = try CoreMetadata.text(value, field)
                try ProjectName.validate(text, what: "Provides-Extra", subject: .metadata)
                providesExtra.append(text)
            default:
                break
            }
        }
        guard let metadataVersion else { throw PackageIndexError(.metadata, "no Metadata-Version field") }
        guard let name else { throw PackageIndexError(.metadata, "no Name field") }
        guard let version else { throw PackageIndexError(.metadata, "no Version field") }
        self.metadataVersion = metadataVersion
        self.name = name
        self.version = version
        self.requiresPython = requiresPython
        self.requiresDist = requiresDist
        self.providesExtra = providesExtra
    }

    /// The name as PEP 503 normalizes it.
    public var normalizedName: String { ProjectName.normalize(name) }

    /// A field's value as UTF-8 text, or an error naming the field.
    static func text(_ value: ArraySlice<UInt8>, _ field: String) throws(PackageIndexError) -> String {
        guard let text = String(validating: value, as: UTF8.self) else { throw PackageIndexError(.metadata, "the \(field) field is not UTF-8") }
        return text
    }

    /// A field's parser, its error prefixed with the field's name.
    static func parse<T>(_ field: String, _ body: () throws(PackageIndexError) -> T) throws(PackageIndexError) -> T {
        do throws(PackageIndexError) {
            return try body()
        } catch {
            throw PackageIndexError(.metadata, "\(field): \(error.description)")
        }
    }

    /// The header's fields in order, `name: value` with continuation lines (starting with a space
    /// or a tab) folded into the value, up to the first empty line or the end. Lines end in LF
    /// or CRLF.
    static func headerFields(_ bytes: [UInt8]) throws(PackageIndexError) -> [(String, ArraySlice<UInt8>)] {
        var fields: [(name: String, value: [UInt8])] = []
        var lineCount = 0
        var start = 0
        while start < bytes.count {
            let newline = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
            var line = bytes[start..<newline]
            if line.last == 0x0D { line = line.dropLast() }
            start = newline + 1
            if line.isEmpty { break }
            lineCount += 1
            guard lineCount <= maximumHeaderLines else { throw PackageIndexError(.metadata, "more than \(maximumHeaderLines) header lines") }
            if line.first == 0x20 || line.first == 0x09 {
                guard !fields.isEmpty else { throw PackageIndexError(.metadata, "a continuation line before any field") }
                fields[fields.count - 1].value.append(0x20)
                fields[fields.count - 1].value += ASCII.trimmed(line)
                continue
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                throw PackageIndexError(.metadata, "header line \(lineCount) has no \":\" (\(ASCII.quote(line)))")
            }
            let name = line[..<colon]
            guard !name.isEmpty, name.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw PackageIndexError(.metadata, "header line \(lineCount) has a field name that is empty or not printable ASCII (\(ASCII.quote(name)))")
            }
            fields.append((String(decoding: name, as: UTF8.self), Array(ASCII.trimmed(line[(colon + 1)...]))))
        }
        return fields.map { ($0.name, ASCII.trimmed($0.value)) }
    }
}
