/// A PEP 440 version (https://peps.python.org/pep-0440/): `[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]`,
/// read with the spec's normalization ("Normalization": case, a leading "v", alternate
/// spellings and separators, implicit numbers, leading zeros) and ordered as "Summary of
/// permitted suffixes and relative ordering" says. `description` is the normalized form.
///
/// Equality is the spec's: release segments compare with trailing zeros insignificant, so
/// `1.0 == 1.0.0` (and both hash alike), though their descriptions differ.
public struct Version: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The longest text read; longer is refused before any parsing.
    public static let maximumBytes = 256
    /// The most release segments (`1.2.3` has three).
    public static let maximumReleaseSegments = 32

    /// Pre-release phases in their order ("Pre-releases": a < b < rc).
    public enum Phase: Int, Sendable, Hashable, Comparable {
        case alpha, beta, releaseCandidate

        public static func < (a: Phase, b: Phase) -> Bool { a.rawValue < b.rawValue }

        /// The normalized spelling: a, b, rc.
        public var spelling: String {
            switch self {
            case .alpha: "a"
            case .beta: "b"
            case .releaseCandidate: "rc"
            }
        }
    }

    public struct PreRelease: Sendable, Hashable {
        public let phase: Phase
        public let number: UInt64
    }

    /// One segment of a local version label ("Local version identifiers"): all digits compare as
    /// a number, anything else as lowercase text.
    public enum LocalSegment: Sendable, Hashable, CustomStringConvertible {
        case number(UInt64)
        case text(String)

        public var description: String {
            switch self {
            case .number(let value): String(value)
            case .text(let text): text
            }
        }
    }

    public let epoch: UInt64
    /// At least one segment.
    public let release: [UInt64]
    public let pre: PreRelease?
    public let post: UInt64?
    public let dev: UInt64?
    /// Empty for a public version.
    public let local: [LocalSegment]

    init(epoch: UInt64, release: [UInt64], pre: PreRelease?, post: UInt64?, dev: UInt64?, local: [LocalSegment]) {
        self.epoch = epoch
        self.release = release
        self.pre = pre
        self.post = post
        self.dev = dev
        self.local = local
    }

    /// Reads a version; leading and trailing whitespace is ignored ("Leading and Trailing Whitespace").
    public init(parsing text: String) throws(PackageIndexError) {
        guard text.utf8.count <= Version.maximumBytes else {
            throw PackageIndexError(.version, "longer than \(Version.maximumBytes) bytes")
        }
        var scanner = VersionScanner(ASCII.trimmed(Array(text.utf8)).map(ASCII.lower))
        self = try scanner.version(text)
    }

    /// A pre-release or a development release ("Handling of pre-releases").
    public var isPrerelease: Bool { pre != nil || dev != nil }
    public var isPostrelease: Bool { post != nil }
    public var isLocal: Bool { !local.isEmpty }

    /// The version without its local label.
    public var publicVersion: Version { Version(epoch: epoch, release: release, pre: pre, post: post, dev: dev, local: []) }
    /// The epoch and release only.
    public var baseVersion: Version { Version(epoch: epoch, release: release, pre: nil, post: nil, dev: nil, local: []) }

    public var description: String {
        var text = epoch == 0 ? "" : "\(epoch)!"
        text += release.map { String($0) }.joined(separator: ".")
        if let pre { text += pre.phase.spelling + String(pre.number) }
        if let post { text += ".post" + String(post) }
        if let dev { text += ".dev" + String(dev) }
        if !local.isEmpty { text += "+" + local.map(\.description).joined(separator: ".") }
        return text
    }

    // MARK: Ordering ("Summary of permitted suffixes and relative ordering")

    public static func < (a: Version, b: Version) -> Bool { compare(a, b) < 0 }
    public static func == (a: Version, b: Version) -> Bool { compare(a, b) == 0 }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(epoch)
        var trimmed = release[...]
        while trimmed.count > 1, trimmed.last == 0 { trimmed = trimmed.dropLast() }
        hasher.combine(Array(trimmed))
        hasher.combine(pre)
        hasher.combine(post)
        hasher.combine(dev)
        hasher.combine(local)
    }

    /// Where the pre-release part sorts: a development release of a final release before its
    /// pre-releases, a final or post release after them.
    enum PreKey: Comparable {
        case developmentOfFinal
        case pre(Phase, UInt64)
        case finalOrPost

        static func < (a: PreKey, b: PreKey) -> Bool {
            switch (a, b) {
            case (.developmentOfFinal, .developmentOfFinal), (.finalOrPost, _): false
            case (.developmentOfFinal, _), (_, .finalOrPost): true
            case (.pre(let p, let n), .pre(let q, let m)): p != q ? p < q : n < m
            case (.pre, .developmentOfFinal): false
            }
        }
    }

    var preKey: PreKey {
        if let pre { return .pre(pre.phase, pre.number) }
        return post == nil && dev != nil ? .developmentOfFinal : .finalOrPost
    }

    /// -1, 0 or 1.
    static func compare(_ a: Version, _ b: Version) -> Int {
        if a.epoch != b.epoch { return a.epoch < b.epoch ? -1 : 1 }
        for index in 0..<max(a.release.count, b.release.count) {
            let x = index < a.release.count ? a.release[index] : 0
            let y = index < b.release.count ? b.release[index] : 0
            if x != y { return x < y ? -1 : 1 }
        }
        let (p, q) = (a.preKey, b.preKey)
        if p != q { return p < q ? -1 : 1 }
        // No post release sorts before any; no dev release after any.
        if a.post != b.post {
            guard let x = a.post else { return -1 }
            guard let y = b.post else { return 1 }
            return x < y ? -1 : 1
        }
        if a.dev != b.dev {
            guard let x = a.dev else { return 1 }
            guard let y = b.dev else { return -1 }
            return x < y ? -1 : 1
        }
        return compareLocal(a.local, b.local)
    }

    /// "Local version identifiers": segment by segment, numbers as numbers and above any text,
    /// text without case; a label that extends another sorts after it; none sorts first.
    static func compareLocal(_ a: [LocalSegment], _ b: [LocalSegment]) -> Int {
        for (x, y) in zip(a, b) {
            switch (x, y) {
            case (.number(let m), .number(let n)): if m != n { return m < n ? -1 : 1 }
            case (.text(let s), .text(let t)): if !ASCII.same(s, t) { return ASCII.precedes(s, t) ? -1 : 1 }
            case (.number, .text): return 1
            case (.text, .number): return -1
            }
        }
        return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
    }
}

/// The recursive reading of one version over lowercase ASCII bytes, following the grammar in
/// PEP 440's "Appendix B" and the normalization rules; each part is tried and, when absent,
/// leaves the index where it was.
struct VersionScanner {
    let bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func peek(_ offset: Int = 0) -> UInt8? { index + offset < bytes.count ? bytes[index + offset] : nil }

    static func isSeparator(_ byte: UInt8?) -> Bool {
        byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
    }

    func fail(_ original: String, _ problem: String) -> PackageIndexError {
        PackageIndexError(.version, "\(ASCII.quote(original)) is not a PEP 440 version: \(problem)")
    }

    /// A run of digits as a number; nil (index unchanged) when there is no digit.
    mutating func number(_ original: String) throws(PackageIndexError) -> UInt64? {
        let start = index
        while let byte = peek(), ASCII.isDigit(byte) { index += 1 }
        guard index > start else { return nil }
        guard let value = ASCII.number(bytes[start..<index]) else {
            throw fail(original, "the number \(ASCII.quote(bytes[start..<index])) does not fit in 64 bits")
        }
        return value
    }

    /// The first of `words` spelled at the index, consumed.
    mutating func keyword(_ words: [String]) -> String? {
        for word in words {
            let count = word.utf8.count
            if index + count <= bytes.count, bytes[index..<(index + count)].elementsEqual(word.utf8) {
                index += count
                return word
            }
        }
        return nil
    }

    /// `[sep][N]` after a keyword: the number, 0 when it is left out ("Implicit pre-release
    /// number"); the separator may stand alone (`1.0a.` is 1.0a0), as Appendix B's expression reads it.
    mutating func implicitNumber(_ original: String) throws(PackageIndexError) -> UInt64 {
        if VersionScanner.isSeparator(peek()) { index += 1 }
        return try number(original) ?? 0
    }

    mutating func version(_ original: String) throws(PackageIndexError) -> Version {
        guard !bytes.isEmpty else { throw fail(original, "it is empty") }
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { throw fail(original, "it has spaces, control or non-ASCII characters") }
        if peek() == UInt8(ascii: "v") { index += 1 }  // "Preceding v character"
        guard let first = try number(original) else { throw fail(original, "it does not start with a number") }
        var epoch: UInt64 = 0
        var release = [first]
        if peek() == UInt8(ascii: "!") {
            index += 1
            guard let afterEpoch = try number(original) else { throw fail(original, "no release number after the epoch") }
            epoch = first
            release = [afterEpoch]
        }
        while peek() == UInt8(ascii: "."), let next = peek(1), ASCII.isDigit(next) {
            guard release.count < Version.maximumReleaseSegments else {
                throw fail(original, "more than \(Version.maximumReleaseSegments) release segments")
            }
            index += 1
            release.append(try number(original) ?? 0)
        }
        let pre = try preRelease(original)
        let post = try postRelease(original)
        let dev = try development(original)
        var local: [Version.LocalSegment] = []
        if peek() == UInt8(ascii: "+") {
            index += 1
            local = try localLabel(original)
        }
        guard index == bytes.count else { throw fail(original, "unexpected \(ASCII.quote(bytes[index...])) at byte \(index)") }
        return Version(epoch: epoch, release: release, pre: pre, post: post, dev: dev, local: local)
    }

    /// "Pre-release separators", "Pre-release spelling": alpha, beta, c, pre, preview.
    mutating func preRelease(_ original: String) throws(PackageIndexError) -> Version.PreRelease? {
        let start = index
        if VersionScanner.isSeparator(peek()) { index += 1 }
        let phase: Version.Phase
        switch keyword(["alpha", "a", "beta", "b", "preview", "pre", "rc", "c"]) {
        case "alpha", "a": phase = .alpha
        case "beta", "b": phase = .beta
        case "preview", "pre", "rc", "c": phase = .releaseCandidate
        default:
            index = start
            return nil
        }
        return Version.PreRelease(phase: phase, number: try implicitNumber(original))
    }

    /// "Post-release separators", "Post-release spelling" (post, rev, r), "Implicit post-release
    /// number", "Implicit post releases" (`1.0-1`).
    mutating func postRelease(_ original: String) throws(PackageIndexError) -> UInt64? {
        if peek() == UInt8(ascii: "-"), let next = peek(1), ASCII.isDigit(next) {
            index += 1
            return try number(original)
        }
        let start = index
        if VersionScanner.isSeparator(peek()) { index += 1 }
        guard keyword(["post", "rev", "r"]) != nil else {
            index = start
            return nil
        }
        return try implicitNumber(original)
    }

    /// "Development release separators", "Implicit development release number".
    mutating func development(_ original: String) throws(PackageIndexError) -> UInt64? {
        let start = index
        if VersionScanner.isSeparator(peek()) { index += 1 }
        guard keyword(["dev"]) != nil else {
            index = start
            return nil
        }
        return try implicitNumber(original)
    }

    /// `[a-z0-9]+([-_.][a-z0-9]+)*` ("Local version segments": separators normalize to ".").
    mutating func localLabel(_ original: String) throws(PackageIndexError) -> [Version.LocalSegment] {
        var segments: [Version.LocalSegment] = []
        while true {
            let start = index
            while let byte = peek(), ASCII.isAlphanumeric(byte) { index += 1 }
            guard index > start else { throw fail(original, "an empty segment in the local label at byte \(index)") }
            let segment = bytes[start..<index]
            if segment.allSatisfy(ASCII.isDigit) {
                guard let value = ASCII.number(segment) else {
                    throw fail(original, "the local segment \(ASCII.quote(segment)) does not fit in 64 bits")
                }
                segments.append(.number(value))
            } else {
                segments.append(.text(String(decoding: segment, as: UTF8.self)))
            }
            guard VersionScanner.isSeparator(peek()) else { return segments }
            index += 1
        }
    }
}
