/// A project's page in a Python package index, the simple repository API
/// (https://packaging.python.org/en/latest/specifications/simple-repository-api/): PEP 503's
/// HTML ("Base HTML API") and PEP 691's JSON (`application/vnd.pypi.simple.v1+json`). Both give
/// the same files: each with an absolute http(s) URL, its hashes, Requires-Python, yanked state
/// (PEP 592) and whether its core metadata is served beside it (PEP 658, PEP 714).
/// Everything a page holds is untrusted: sizes are checked before reading, every URL is
/// resolved against the page's own and must be http(s), filenames are single safe names.
public enum SimpleIndex {
    /// The largest page read; larger is refused before any parsing.
    public static let maximumPageBytes = 16 << 20
    public static let maximumFiles = 100_000
    public static let maximumHrefBytes = 8 << 10
    public static let maximumFilenameBytes = 255
    /// The most attributes one HTML tag may carry.
    public static let maximumAttributes = 64

    public static let htmlMediaType = "application/vnd.pypi.simple.v1+html"
    public static let jsonMediaType = "application/vnd.pypi.simple.v1+json"

    /// The lengths in hex of the hashes named by hashlib's guaranteed algorithms ("Base HTML API").
    static let hashLengths = ["md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128]

    /// The page's URL, the base for its relative references: absolute http or https.
    static func base(_ pageURL: String) throws(PackageIndexError) -> URLReference {
        let reference = URLReference(pageURL)
        guard reference.isHTTP else { throw PackageIndexError(.url, "the page URL \(ASCII.quote(pageURL)) is not an absolute http(s) URL") }
        return reference
    }

    /// A file's URL resolved against `base` (RFC 3986 §5.2), without its fragment, and the fragment.
    static func resolve(_ href: String, against base: URLReference, file: String) throws(PackageIndexError) -> (url: String, fragment: String?) {
        guard href.utf8.count <= maximumHrefBytes else {
            throw PackageIndexError(.simpleIndex, "the URL of \(ASCII.quote(file)) is longer than \(maximumHrefBytes) bytes")
        }
        guard href.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw PackageIndexError(.simpleIndex, "the URL of \(ASCII.quote(file)) has spaces, control or non-ASCII characters")
        }
        var target = URLReference(href).resolved(against: base)
        guard target.isHTTP else { throw PackageIndexError(.simpleIndex, "the URL of \(ASCII.quote(file)) is not http(s): \(ASCII.quote(href))") }
        let fragment = target.fragment
        target.fragment = nil
        return (target.description, fragment)
    }

    /// A file name that is one safe path component.
    static func checkFilename(_ name: String) throws(PackageIndexError) {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= maximumFilenameBytes else {
            throw PackageIndexError(.simpleIndex, "a file name is empty or longer than \(maximumFilenameBytes) bytes (\(ASCII.quote(bytes)))")
        }
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "\\") }), name != ".", name != ".." else {
            throw PackageIndexError(.simpleIndex, "the file name \(ASCII.quote(bytes)) is not one printable ASCII path component")
        }
    }

    /// One `name=hex` hash: a known algorithm's must have its length; an unknown name is kept when
    /// its value is hex, and refused (`strict`) or dropped otherwise. Hex is kept lowercase.
    static func hash(_ name: String, _ value: String, file: String, strict: Bool) throws(PackageIndexError) -> (String, String)? {
        let nameOK = !name.isEmpty && name.utf8.count <= 32 && name.utf8.allSatisfy { ASCII.isAlphanumeric($0) || $0 == UInt8(ascii: "_") }
        let hexOK = !value.isEmpty && value.utf8.count <= 256 && value.utf8.allSatisfy(ASCII.isHexDigit)
        let lowered = ASCII.lowercased(name)
        if let length = hashLengths[lowered] {
            guard hexOK, value.utf8.count == length else {
                throw PackageIndexError(.simpleIndex, "the \(lowered) of \(ASCII.quote(file)) is not \(length) hex digits: \(ASCII.quote(value))")
            }
        } else if !nameOK || !hexOK {
            if strict { throw PackageIndexError(.simpleIndex, "the hash \(ASCII.quote(name)) of \(ASCII.quote(file)) is not a name and hex digits") }
            return nil
        }
        return (lowered, ASCII.lowercased(value))
    }

    /// `#name=value` after a URL ("Base HTML API": the file's hash), nil for other fragments.
    static func fragmentHash(_ fragment: String?, file: String) throws(PackageIndexError) -> [String: String] {
        guard let fragment else { return [:] }
        let parts = fragment.utf8.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return [:] }
        guard let pair = try hash(String(decoding: parts[0], as: UTF8.self), String(decoding: parts[1], as: UTF8.self), file: file, strict: false) else {
            return [:]
        }
        return [pair.0: pair.1]
    }

    /// The last path segment of `url`, percent-decoded (RFC 3986 §2.1).
    static func lastPathSegment(_ url: String) -> String? {
        let path = Array(URLReference(url).path.utf8)
        let segment = path[((path.lastIndex(of: UInt8(ascii: "/")) ?? -1) + 1)...]
        var out: [UInt8] = []
        var index = segment.startIndex
        while index < segment.endIndex {
            if segment[index] == UInt8(ascii: "%"), index + 2 < segment.endIndex, ASCII.isHexDigit(segment[index + 1]), ASCII.isHexDigit(segment[index + 2]) {
                out.append(hexValue(segment[index + 1]) << 4 | hexValue(segment[index + 2]))
                index += 3
            } else {
                out.append(segment[index])
                index += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8 { ASCII.isDigit(byte) ? byte - 0x30 : ASCII.lower(byte) - 0x61 + 10 }

    static func checkSize(_ bytes: [UInt8]) throws(PackageIndexError) {
        guard bytes.count <= maximumPageBytes else { throw PackageIndexError(.simpleIndex, "longer than \(maximumPageBytes) bytes") }
        guard String(validating: bytes, as: UTF8.self) != nil else { throw PackageIndexError(.simpleIndex, "the page is not UTF-8") }
    }
}

/// One file of a project page.
public struct DistributionFile: Sendable, Hashable {
    public let filename: String
    /// Absolute, http or https, without a fragment.
    public let url: String
    /// Algorithm (lowercase) → hex digest (lowercase).
    public let hashes: [String: String]
    /// The `Requires-Python` text as served (entities decoded); nil when absent.
    public let requiresPython: String?
    /// PEP 592: a yanked file is installed only when pinned exactly.
    public let isYanked: Bool
    public let yankedReason: String?
    /// PEP 658 / 714: nil when the core metadata is not served beside the file; else its hashes
    /// (empty when served without one). It is at `url` + ".metadata".
    public let coreMetadata: [String: String]?

    public init(filename: String, url: String, hashes: [String: String], requiresPython: String?, isYanked: Bool, yankedReason: String?,
                coreMetadata: [String: String]?) {
        self.filename = filename
        self.url = url
        self.hashes = hashes
        self.requiresPython = requiresPython
        self.isYanked = isYanked
        self.yankedReason = yankedReason
        self.coreMetadata = coreMetadata
    }

    public var sha256: String? { hashes["sha256"] }
}

/// A project page: its files in the page's order, and the project's name where the page says it (JSON).
public struct ProjectPage: Sendable, Hashable {
    public let name: String?
    public let files: [DistributionFile]
}
