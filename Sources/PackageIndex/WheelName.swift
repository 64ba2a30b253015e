/// A wheel's filename (binary distribution format, "File name convention",
/// https://packaging.python.org/en/latest/specifications/binary-distribution-format/):
/// `{distribution}-{version}(-{build tag})?-{python tag}-{abi tag}-{platform tag}.whl`, each
/// tag possibly a compressed set joined with `.` (platform compatibility tags, "Compressed
/// tag sets"). The name is checked as a single safe path component: it is used as one on the
/// host and in the guest.
public struct WheelName: Sendable, Hashable, CustomStringConvertible {
    /// The longest filename read (a Linux file name's limit).
    public static let maximumBytes = 255
    /// The most tags in one compressed set.
    public static let maximumTagsPerSet = 16

    /// "Build tag": a number first, then an optional suffix; it sorts by number, then suffix.
    public struct BuildTag: Sendable, Hashable, Comparable, CustomStringConvertible {
        public let number: UInt64
        public let suffix: String

        public static func < (a: BuildTag, b: BuildTag) -> Bool {
            a.number != b.number ? a.number < b.number : ASCII.precedes(a.suffix, b.suffix)
        }

        public var description: String { String(number) + suffix }
    }

    public let filename: String
    /// The distribution as the filename spells it ("Escaping and Unicode": `-` written as `_`).
    public let distribution: String
    public let version: Version
    public let buildTag: BuildTag?
    /// Lowercase, in the filename's order.
    public let pythonTags: [String]
    public let abiTags: [String]
    public let platformTags: [String]

    public init(parsing filename: String) throws(PackageIndexError) {
        let bytes = Array(filename.utf8)
        guard bytes.count <= WheelName.maximumBytes else { throw PackageIndexError(.wheelName, "longer than \(WheelName.maximumBytes) bytes") }
        if let bad = bytes.first(where: { !(ASCII.isAlphanumeric($0) || Array("._-+!".utf8).contains($0)) }) {
            throw PackageIndexError(.wheelName, "\(ASCII.quote(filename)) has \(ASCII.quote([bad])); a wheel's name is letters, digits and . _ - + !")
        }
        try self.init(checked: filename, bytes)
    }

    init(checked filename: String, _ bytes: [UInt8]) throws(PackageIndexError) {
        guard bytes.count > 4, bytes.suffix(4).elementsEqual(".whl".utf8) else {
            throw PackageIndexError(.wheelName, "\(ASCII.quote(filename)) does not end in .whl")
        }
        let parts = bytes.dropLast(4).split(separator: UInt8(ascii: "-"), omittingEmptySubsequences: false)
        guard parts.count == 5 || parts.count == 6 else {
            throw PackageIndexError(.wheelName, "\(ASCII.quote(filename)) has \(parts.count) parts separated by \"-\", not 5 or 6")
        }
        let distribution = String(decoding: parts[0], as: UTF8.self)
        try ProjectName.validate(distribution, what: "distribution name of \(ASCII.quote(filename))", subject: .wheelName)
        do throws(PackageIndexError) {
            version = try Version(parsing: String(decoding: parts[1], as: UTF8.self))
        } catch {
            throw PackageIndexError(.wheelName, "\(ASCII.quote(filename)): \(error.reason)")
        }
        if parts.count == 6 {
            let tag = parts[2]
            let digits = tag.prefix { ASCII.isDigit($0) }
            guard let number = ASCII.number(digits), tag.allSatisfy({ ASCII.isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }) else {
                throw PackageIndexError(.wheelName, "\(ASCII.quote(filename)): the build tag \(ASCII.quote(tag)) does not start with a number (that fits in 64 bits)")
            }
            buildTag = BuildTag(number: number, suffix: String(decoding: tag.dropFirst(digits.count), as: UTF8.self))
        } else {
            buildTag = nil
        }
        let tagParts = Array(parts.suffix(3))
        pythonTags = try WheelName.tagSet(tagParts[0], "python", filename)
        abiTags = try WheelName.tagSet(tagParts[1], "ABI", filename)
        platformTags = try WheelName.tagSet(tagParts[2], "platform", filename)
        self.filename = filename
        self.distribution = distribution
    }

    /// One compressed tag set: tags of letters, digits and `_`, joined with `.`.
    static func tagSet(_ part: ArraySlice<UInt8>, _ what: String, _ filename: String) throws(PackageIndexError) -> [String] {
        let tags = part.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard tags.count <= maximumTagsPerSet else {
            throw PackageIndexError(.wheelName, "\(ASCII.quote(filename)): more than \(maximumTagsPerSet) \(what) tags")
        }
        return try tags.map { (tag: ArraySlice<UInt8>) throws(PackageIndexError) -> String in
            guard !tag.isEmpty, tag.allSatisfy({ ASCII.isAlphanumeric($0) || $0 == UInt8(ascii: "_") }) else {
                throw PackageIndexError(.wheelName, "\(ASCII.quote(filename)): the \(what) tag \(ASCII.quote(tag)) is empty or not letters, digits and _")
            }
            return String(decoding: tag.map(ASCII.lower), as: UTF8.self)
        }
    }

    /// The distribution's name as PEP 503 normalizes it.
    public var normalizedName: String { ProjectName.normalize(distribution) }

    /// Every tag the compressed sets expand to ("Compressed tag sets"), python × ABI × platform.
    public var tags: [Tag] {
        pythonTags.flatMap { python in abiTags.flatMap { abi in platformTags.map { Tag(python: python, abi: abi, platform: $0) } } }
    }

    public var description: String { filename }
}
