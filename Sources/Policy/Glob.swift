/// A glob compiled once: path globs split into segments, `[...]` classes into bitsets. Matching
/// works on UTF-8 bytes and allocates nothing. The syntax is in docs/policy.md ("Globs").
public struct Glob: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// An absolute path: `*` stays inside one segment, `**` spans segments.
        case path
        /// A bucket namespace: like a path, without the leading "/".
        case namespace
        /// Free text (arguments, environment): `*` matches any run of characters, "/" included.
        case text
    }

    public let pattern: String
    public let kind: Kind
    let segments: [Segment]
    /// How many leading segments are plain literals ("/out/cases/*" has 2).
    let literalPrefixDepth: Int

    public var description: String { pattern }

    /// Byte equality, as Linux compares names: Swift's `String ==` would call an NFC and an NFD
    /// spelling of one word equal, though they match different paths.
    public static func == (a: Glob, b: Glob) -> Bool { a.kind == b.kind && a.pattern.utf8.elementsEqual(b.pattern.utf8) }
    public func hash(into hasher: inout Hasher) {
        for byte in pattern.utf8 { hasher.combine(byte) }
        hasher.combine(kind)
    }

    enum Segment: Sendable {
        case literal([UInt8])
        case doubleStar
        case tokens([Token])
    }

    enum Token: Sendable {
        case byte(UInt8)
        /// `?`: one character (one Unicode scalar).
        case one
        case star
        case set(ASCIISet, negated: Bool)
    }

    /// Whether the pattern ends in a `**` segment, so that whatever it matches, it matches the
    /// whole tree below too.
    var endsWithDoubleStar: Bool {
        if case .doubleStar = segments.last { return true }
        return false
    }

    public init(_ pattern: String, kind: Kind) throws(GlobError) {
        self.pattern = pattern
        self.kind = kind
        let bytes = Array(pattern.utf8)
        if bytes.isEmpty { throw GlobError("is empty") }
        if bytes.contains(0) { throw GlobError("contains a NUL byte") }
        switch kind {
        case .text:
            segments = [try Self.segment(bytes[...], allowSlash: true)]
            literalPrefixDepth = 0
        case .path, .namespace:
            var body = bytes[...]
            if kind == .path {
                guard bytes.first == UInt8(ascii: "/") else { throw GlobError("must be an absolute path (start with \"/\")") }
                body = bytes.dropFirst()
            } else if bytes.first == UInt8(ascii: "/") {
                throw GlobError("must not start with \"/\"")
            }
            var segments: [Segment] = []
            if !body.isEmpty {  // "/" alone: the root, no segments
                for part in body.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
                    if part.isEmpty { throw GlobError("has an empty segment (\"//\" or a trailing \"/\")") }
                    if part.elementsEqual([UInt8(ascii: ".")]) || part.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                        throw GlobError("has a \".\" or \"..\" segment")
                    }
                    if part.elementsEqual([UInt8(ascii: "*"), UInt8(ascii: "*")]) {
                        if case .doubleStar = segments.last {} else { segments.append(.doubleStar) }
                        continue
                    }
                    if part.firstRange(of: [UInt8(ascii: "*"), UInt8(ascii: "*")]) != nil {
                        throw GlobError("has \"**\" inside a segment; \"**\" must be a whole segment")
                    }
                    segments.append(try Self.segment(part, allowSlash: false))
                }
            }
            if kind == .namespace && segments.isEmpty { throw GlobError("is empty") }
            self.segments = segments
            literalPrefixDepth = segments.prefix { if case .literal = $0 { true } else { false } }.count
        }
    }

    /// One segment's tokens; a literal segment when it has no metacharacters.
    private static func segment(_ bytes: ArraySlice<UInt8>, allowSlash: Bool) throws(GlobError) -> Segment {
        var tokens: [Token] = []
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "*"):
                if case .star = tokens.last {} else { tokens.append(.star) }
                i += 1
            case UInt8(ascii: "?"):
                tokens.append(.one)
                i += 1
            case UInt8(ascii: "\\"):
                guard i + 1 < bytes.endIndex else { throw GlobError("ends with a lone \"\\\"") }
                tokens.append(.byte(bytes[i + 1]))
                i += 2
            case UInt8(ascii: "["):
                let (set, negated, next) = try characterClass(bytes, from: i + 1, allowSlash: allowSlash)
                tokens.append(.set(set, negated: negated))
                i = next
            default:
                tokens.append(.byte(b))
                i += 1
            }
        }
        let literal = tokens.compactMap { if case .byte(let b) = $0 { b } else { nil } }
        return literal.count == tokens.count ? .literal(literal) : .tokens(tokens)
    }

    /// `[abc]`, `[a-z]`, `[!a-z]` or `[^a-z]`; a "]" right after the opening (or the "!") is a
    /// member; `\x` escapes. ASCII members only.
    private static func characterClass(_ bytes: ArraySlice<UInt8>, from start: Int, allowSlash: Bool)
        throws(GlobError) -> (ASCIISet, Bool, Int)
    {
        var i = start
        var negated = false
        if i < bytes.endIndex, bytes[i] == UInt8(ascii: "!") || bytes[i] == UInt8(ascii: "^") {
            negated = true
            i += 1
        }
        var set = ASCIISet()
        var first = true
        while true {
            guard i < bytes.endIndex else { throw GlobError("has an unterminated character class") }
            var b = bytes[i]
            if b == UInt8(ascii: "]") && !first { break }
            first = false
            if b == UInt8(ascii: "\\") {
                guard i + 1 < bytes.endIndex else { throw GlobError("has an unterminated character class") }
                i += 1
                b = bytes[i]
            }
            var high = b
            if i + 2 < bytes.endIndex, bytes[i + 1] == UInt8(ascii: "-"), bytes[i + 2] != UInt8(ascii: "]") {
                high = bytes[i + 2]
                if high == UInt8(ascii: "\\") {
                    guard i + 3 < bytes.endIndex else { throw GlobError("has an unterminated character class") }
                    high = bytes[i + 3]
                    i += 1
                }
                i += 2
                guard b <= high else { throw GlobError("has a reversed range in a character class") }
            }
            guard b < 0x80, high < 0x80 else { throw GlobError("has a non-ASCII character in a character class") }
            if !allowSlash, b <= UInt8(ascii: "/"), UInt8(ascii: "/") <= high {
                throw GlobError("has \"/\" in a character class")
            }
            for c in b...high { set.insert(c) }
            i += 1
        }
        return (set, negated, i + 1)
    }

    // MARK: Matching

    /// Whether `text` matches. Path globs expect a normalised absolute path (see
    /// `PathNormalization`), namespace globs a namespace without empty, "." or ".." segments.
    public func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { matches(bytes: $0) }
    }

    func matches(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        switch kind {
        case .text:
            guard case .tokens(let tokens) = segments[0] else {
                if case .literal(let literal) = segments[0] { return Self.equal(bytes, 0, bytes.count, literal) }
                return false
            }
            return Self.match(tokens, bytes, 0, bytes.count)
        case .path:
            guard bytes.first == UInt8(ascii: "/") else { return false }
            return matchSegments(bytes, from: 1)
        case .namespace:
            guard !bytes.isEmpty else { return false }
            return matchSegments(bytes, from: 0)
        }
    }

    /// Segment-level matching: `**` plays the star, every other segment matches exactly one path
    /// segment, so the classic one-backtrack-point algorithm is exact and O(n·m).
    private func matchSegments(_ path: UnsafeBufferPointer<UInt8>, from start: Int) -> Bool {
        let n = path.count
        var p = 0
        var position = start
        var starP = -1
        var starPosition = 0
        func segmentEnd(_ from: Int) -> Int {
            var e = from
            while e < n && path[e] != UInt8(ascii: "/") { e += 1 }
            return e
        }
        func nextStart(_ end: Int) -> Int { end < n ? end + 1 : n }
        while position < n {
            let end = segmentEnd(position)
            if p < segments.count {
                switch segments[p] {
                case .doubleStar:
                    starP = p
                    starPosition = position
                    p += 1
                    continue
                case .literal(let literal):
                    if Self.equal(path, position, end, literal) {
                        p += 1
                        position = nextStart(end)
                        continue
                    }
                case .tokens(let tokens):
                    if Self.match(tokens, path, position, end) {
                        p += 1
                        position = nextStart(end)
                        continue
                    }
                }
            }
            guard starP >= 0 else { return false }
            p = starP + 1
            starPosition = nextStart(segmentEnd(starPosition))
            position = starPosition
        }
        while p < segments.count, case .doubleStar = segments[p] { p += 1 }
        return p == segments.count
    }

    private static func equal(_ s: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int, _ literal: [UInt8]) -> Bool {
        guard to - from == literal.count else { return false }
        var i = 0
        while i < literal.count {
            if s[from + i] != literal[i] { return false }
            i += 1
        }
        return true
    }

    /// The length of the UTF-8 sequence that `lead` starts (1 for a stray continuation byte).
    @inline(__always) private static func scalarLength(_ lead: UInt8) -> Int {
        lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
    }

    /// Tokens against s[from..<to]; `*` backtracks one scalar at a time.
    private static func match(_ tokens: [Token], _ s: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> Bool {
        var t = 0
        var i = from
        var starT = -1
        var starI = 0
        while i < to {
            if t < tokens.count {
                switch tokens[t] {
                case .star:
                    starT = t
                    starI = i
                    t += 1
                    continue
                case .byte(let b):
                    if s[i] == b {
                        t += 1
                        i += 1
                        continue
                    }
                case .one:
                    t += 1
                    i = min(to, i + scalarLength(s[i]))
                    continue
                case .set(let set, let negated):
                    if set.contains(s[i]) != negated {
                        t += 1
                        i = min(to, i + scalarLength(s[i]))
                        continue
                    }
                }
            }
            guard starT >= 0 else { return false }
            t = starT + 1
            starI = min(to, starI + scalarLength(s[starI]))
            i = starI
        }
        while t < tokens.count, case .star = tokens[t] { t += 1 }
        return t == tokens.count
    }
}

// MARK: Containment

extension Glob {
    /// Whether everything this glob matches, `other` matches too. Conservative: true only where
    /// that is certain (docs/policy.md, "Sub-agent policies"), so false proves nothing.
    public func isWithin(_ other: Glob) -> Bool {
        guard kind == other.kind else { return false }
        if self == other || other.matchesEverything { return true }
        if let literal { return other.matches(literal) }
        switch kind {
        case .text:
            // other is "PREFIX*": whatever self matches starts with its leading literal bytes.
            guard case .tokens(let tokens) = other.segments[0], case .star = tokens.last else { return false }
            var prefix: [UInt8] = []
            for token in tokens.dropLast() {
                guard case .byte(let b) = token else { return false }
                prefix.append(b)
            }
            return leadingLiteral.starts(with: prefix)
        case .path, .namespace:
            // other is "PREFIX/**": "/" always ends a segment, so self's first segments are PREFIX's.
            // Compared as bytes (String.hasPrefix would take canonically equivalent Unicode).
            let otherBytes = Array(other.pattern.utf8)
            guard otherBytes.count >= 3, otherBytes.suffix(3).elementsEqual("/**".utf8) else { return false }
            return pattern.utf8.starts(with: otherBytes.dropLast(2))
        }
    }

    /// Whether some text may match both globs. Conservative the other way from `isWithin`:
    /// false only where certain (one is literal and the other misses it, or their leading
    /// literals disagree), so true proves nothing.
    public func mayOverlap(_ other: Glob) -> Bool {
        guard kind == other.kind else { return false }
        if let literal { return other.matches(literal) }
        if let literal = other.literal { return matches(literal) }
        switch kind {
        case .text:
            let (a, b) = (leadingLiteral, other.leadingLiteral)
            return a.count <= b.count ? b.starts(with: a) : a.starts(with: b)
        case .path, .namespace:
            // Segment by segment until a `**` (which may take any number of segments, none
            // included): two segments at one place must be able to match one name.
            var i = 0
            while i < segments.count && i < other.segments.count {
                if case .doubleStar = segments[i] { return true }
                if case .doubleStar = other.segments[i] { return true }
                if !Self.segmentsMayOverlap(segments[i], other.segments[i]) { return false }
                i += 1
            }
            // The shorter matches exactly i segments; the longer can stop there only on `**`.
            let rest = segments.count > i ? segments[i...] : other.segments[i...]
            return rest.allSatisfy { if case .doubleStar = $0 { true } else { false } }
        }
    }

    private static func segmentsMayOverlap(_ a: Segment, _ b: Segment) -> Bool {
        switch (a, b) {
        case (.literal(let x), .literal(let y)): return x == y
        case (.literal(let x), .tokens(let t)), (.tokens(let t), .literal(let x)):
            return x.withUnsafeBufferPointer { match(t, $0, 0, x.count) }
        case (.tokens(let t), .tokens(let u)):
            let (x, y) = (leadingBytes(t), leadingBytes(u))
            return x.count <= y.count ? y.starts(with: x) : x.starts(with: y)
        default: return true
        }
    }

    private static func leadingBytes(_ tokens: [Token]) -> [UInt8] {
        var bytes: [UInt8] = []
        for token in tokens {
            guard case .byte(let b) = token else { break }
            bytes.append(b)
        }
        return bytes
    }

    /// "*" (text), "/**" (path) or "**" (namespace).
    var matchesEverything: Bool {
        switch kind {
        case .text:
            if case .tokens(let tokens) = segments[0], tokens.count == 1, case .star = tokens[0] { return true }
            return false
        case .path, .namespace:
            if segments.count == 1, case .doubleStar = segments[0] { return true }
            return false
        }
    }

    /// The one text a glob without wildcards matches (escapes undone); nil when it has any.
    var literal: String? {
        var parts: [String] = []
        for segment in segments {
            guard case .literal(let bytes) = segment else { return nil }
            parts.append(String(decoding: bytes, as: UTF8.self))
        }
        switch kind {
        case .text: return parts[0]
        case .path: return "/" + parts.joined(separator: "/")
        case .namespace: return parts.joined(separator: "/")
        }
    }

    /// The leading literal segments of a path or namespace glob, escapes undone.
    var literalSegments: [[UInt8]] {
        segments.prefix(literalPrefixDepth).map { if case .literal(let bytes) = $0 { bytes } else { [] } }
    }

    /// A text glob's bytes before its first wildcard.
    private var leadingLiteral: [UInt8] {
        switch segments[0] {
        case .literal(let bytes): return bytes
        case .doubleStar: return []
        case .tokens(let tokens):
            var bytes: [UInt8] = []
            for token in tokens {
                guard case .byte(let b) = token else { break }
                bytes.append(b)
            }
            return bytes
        }
    }
}

/// 128 bits, one per ASCII code.
struct ASCIISet: Sendable, Hashable {
    private var low: UInt64 = 0
    private var high: UInt64 = 0

    mutating func insert(_ b: UInt8) {
        if b < 64 { low |= 1 << UInt64(b) } else if b < 128 { high |= 1 << UInt64(b - 64) }
    }

    func contains(_ b: UInt8) -> Bool {
        b < 64 ? low & (1 << UInt64(b)) != 0 : b < 128 ? high & (1 << UInt64(b - 64)) != 0 : false
    }
}

/// Why a pattern is not a valid glob; reads after `pattern "x" `.
public struct GlobError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}
