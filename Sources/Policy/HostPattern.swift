/// The `host` of a `network.egress` rule: a DNS name glob, or an address block. A name glob
/// never matches an address, nor a block a name (docs/policy.md, "network.egress").
public enum HostPattern: Sendable, Hashable, CustomStringConvertible {
    case name(NamePattern)
    case network(IPNetwork)

    /// A name glob when the text has a letter-led last label or a wildcard, else an address or block.
    public static func parse(_ text: String) -> Result<HostPattern, HostProblem> {
        if text.utf8.contains(UInt8(ascii: ":")) || text.utf8.contains(UInt8(ascii: "/")) || IPAddress.looksLikeInetAton(Array(text.utf8)[...]) {
            switch IPNetwork.parse(text) {
            case .success(let network):
                return network.embedsIPv4 ? .failure(.embedsIPv4(network)) : .success(.network(network))
            case .failure(let problem): return .failure(.network(problem))
            }
        }
        return NamePattern.parse(text).map(HostPattern.name)
    }

    public enum HostProblem: Error, Sendable, Hashable, CustomStringConvertible {
        case network(IPNetwork.NetworkProblem)
        case name(HostName.Problem)
        case embedsIPv4(IPNetwork)
        case wildcardLabel
        case tooManyDoubleStars

        public var description: String {
            switch self {
            case .network(let problem): problem.description
            case .name(let problem): problem.description
            case .embedsIPv4(let network):
                "is judged as the IPv4 address inside it (\(network.address.effective)); name the IPv4 address or block instead"
            case .wildcardLabel: "has a wildcard inside a label; \"*\" and \"**\" must be whole labels"
            case .tooManyDoubleStars: "has more than one \"**\" label"
            }
        }
    }

    public var description: String {
        switch self {
        case .name(let pattern): pattern.description
        case .network(let network): network.description
        }
    }

    /// Whether everything this pattern allows, `other` allows too (names against names,
    /// blocks against blocks).
    public func isWithin(_ other: HostPattern) -> Bool {
        switch (self, other) {
        case (.name(let a), .name(let b)): a.isWithin(b)
        case (.network(let a), .network(let b)): a.isWithin(b)
        default: false
        }
    }

    /// Whether some destination may match both; true proves nothing.
    public func mayOverlap(_ other: HostPattern) -> Bool {
        switch (self, other) {
        case (.name(let a), .name(let b)): a.mayOverlap(b)
        case (.network(let a), .network(let b)): a.isWithin(b) || b.isWithin(a)
        default: false
        }
    }
}

/// A DNS name glob: lowercase labels, each literal, `*` (exactly one label) or `**` (any
/// number of labels, none included; at most one per pattern).
public struct NamePattern: Sendable, Hashable, CustomStringConvertible {
    public enum Label: Sendable, Hashable {
        case literal(String)
        case one
        case any
    }

    public let labels: [Label]

    public static func parse(_ text: String) -> Result<NamePattern, HostPattern.HostProblem> {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= HostName.maximumLength else { return .failure(.name(bytes.isEmpty ? .empty : .tooLong)) }
        var labels: [Label] = []
        for part in bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            if part.elementsEqual("*".utf8) {
                labels.append(.one)
            } else if part.elementsEqual("**".utf8) {
                guard !labels.contains(.any) else { return .failure(.tooManyDoubleStars) }
                labels.append(.any)
            } else if part.contains(UInt8(ascii: "*")) {
                return .failure(.wildcardLabel)
            } else {
                labels.append(.literal(String(decoding: part, as: UTF8.self)))
            }
        }
        // The literal labels must make a valid name with the wildcards standing for "x".
        let sample = labels.map { if case .literal(let text) = $0 { text } else { "x" } }.joined(separator: ".")
        if case .failure(let problem) = HostName.check(Array(sample.utf8), requireLowercase: true) { return .failure(.name(problem)) }
        return .success(NamePattern(labels: labels))
    }

    public var description: String {
        labels.map {
            switch $0 {
            case .literal(let text): text
            case .one: "*"
            case .any: "**"
            }
        }.joined(separator: ".")
    }

    var literal: String? {
        labels.allSatisfy({ if case .literal = $0 { true } else { false } }) ? description : nil
    }

    /// `name` must be a normal name (`HostName.normalize`). `**` takes the one backtracking
    /// point, so the walk is exact and linear in the labels.
    public func matches(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        var p = 0
        var n = 0
        var star = -1
        var starN = 0
        while n < parts.count {
            if p < labels.count {
                switch labels[p] {
                case .any:
                    star = p
                    starN = n
                    p += 1
                    continue
                case .one:
                    p += 1
                    n += 1
                    continue
                case .literal(let text):
                    if parts[n].utf8.elementsEqual(text.utf8) {
                        p += 1
                        n += 1
                        continue
                    }
                }
            }
            guard star >= 0 else { return false }
            p = star + 1
            starN += 1
            n = starN
        }
        while p < labels.count, labels[p] == .any { p += 1 }
        return p == labels.count
    }

    /// Whether every name this matches, `other` matches: `other`'s `**` may absorb anything of
    /// this pattern's, its `*` one literal or `*` label, its literals the same literal. Exact
    /// for patterns with at most one `**` each.
    public func isWithin(_ other: NamePattern) -> Bool {
        let (a, b) = (labels, other.labels)
        // covered[i][j]: b[j...] matches every expansion of a[i...].
        var covered = [[Bool]](repeating: [Bool](repeating: false, count: b.count + 1), count: a.count + 1)
        covered[a.count][b.count] = true
        for j in stride(from: b.count - 1, through: 0, by: -1) { covered[a.count][j] = b[j] == .any && covered[a.count][j + 1] }
        for i in stride(from: a.count - 1, through: 0, by: -1) {
            for j in stride(from: b.count - 1, through: 0, by: -1) {
                switch (a[i], b[j]) {
                case (_, .any): covered[i][j] = covered[i][j + 1] || covered[i + 1][j]
                case (.any, _): covered[i][j] = false
                case (.literal, .one), (.one, .one): covered[i][j] = covered[i + 1][j + 1]
                case (.literal(let x), .literal(let y)): covered[i][j] = x == y && covered[i + 1][j + 1]
                case (.one, .literal): covered[i][j] = false
                }
            }
        }
        return covered[0][0]
    }

    /// False only when certain: a literal side the other does not match.
    public func mayOverlap(_ other: NamePattern) -> Bool {
        if let name = literal { return other.matches(name) }
        if let name = other.literal { return matches(name) }
        return true
    }
}

/// A destination host as a call names it, refused in any form that resolvers may read
/// differently (docs/policy.md, "Addresses").
public enum HostName {
    /// RFC 1035 §2.3.4: 255 bytes on the wire, 253 as text.
    public static let maximumLength = 253

    public enum Problem: Error, Sendable, Hashable, CustomStringConvertible {
        case empty
        case tooLong
        case badLabel
        case uppercase
        case numericLastLabel
        case address(IPAddress.Problem)

        public var description: String {
            switch self {
            case .empty: "is empty"
            case .tooLong: "is longer than \(HostName.maximumLength) bytes"
            case .badLabel:
                "is not a DNS name: labels of 1 to 63 letters, digits and \"-\" (not first or last), separated by \".\""
            case .uppercase: "has uppercase letters; write host names in lowercase"
            case .numericLastLabel: "ends in a numeric label, which resolvers read as an IPv4 address; write four decimal numbers such as 127.0.0.1"
            case .address(let problem): problem.description
            }
        }
    }

    /// What a call's host is: a strict address literal, or a name lowercased with one trailing
    /// "." dropped (RFC 4343: names compare without case).
    public enum Parsed: Sendable, Hashable {
        case address(IPAddress)
        case name(String)
    }

    public static func normalize(_ text: String) -> Result<Parsed, Problem> {
        guard text.utf8.count <= maximumLength + 1 else { return .failure(.tooLong) }
        if text.utf8.contains(UInt8(ascii: ":")) || IPAddress.looksLikeInetAton(Array(text.utf8)[...]) {
            return IPAddress.parse(text).map(Parsed.address).mapError(Problem.address)
        }
        var bytes = Array(text.utf8).map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 | 0x20 : $0 }
        if bytes.count > 1, bytes.last == UInt8(ascii: ".") { bytes.removeLast() }
        if case .failure(let problem) = check(bytes, requireLowercase: true) { return .failure(problem) }
        return .success(.name(String(decoding: bytes, as: UTF8.self)))
    }

    /// RFC 1123 §2.1 host names: LDH labels of 1–63 bytes, no leading or trailing "-", a last
    /// label that is not all digits.
    static func check(_ bytes: [UInt8], requireLowercase: Bool) -> Result<Void, Problem> {
        guard !bytes.isEmpty else { return .failure(.empty) }
        guard bytes.count <= maximumLength else { return .failure(.tooLong) }
        let labels = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        for label in labels {
            guard (1...63).contains(label.count), label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-") else { return .failure(.badLabel) }
            for b in label {
                if b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") {
                    if requireLowercase { return .failure(.uppercase) }
                    continue
                }
                guard IPAddress.isDigit(b) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || b == UInt8(ascii: "-") else {
                    return .failure(.badLabel)
                }
            }
        }
        if labels.last!.allSatisfy(IPAddress.isDigit) { return .failure(.numericLastLabel) }
        return .success(())
    }
}
