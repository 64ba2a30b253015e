/// `network`: where the host may connect for the agent (`egress`, first match decides, none by
/// default) and how much (`limits`). docs/policy.md, "network.egress".
public struct Network: Sendable, Equatable {
    /// Where `network.egress` was written; nil when it was not.
    public var egressList: RuleRef?
    public var egress: [EgressRule] = []
    public var limits = NetworkLimits()

    public init() {}
}

/// One entry of `network.egress`.
public struct EgressRule: Sendable, Equatable {
    public var rule: RuleRef
    public var host: HostPattern
    /// Ports allowed; by default 443 for tls, 80 for http, both for any.
    public var ports: [PortRange]
    public var scheme: EgressRuleScheme
    /// HTTP methods allowed (http only); nil: any.
    public var methods: Set<String>?
    /// Path globs over the request's path (http only); nil: any.
    public var paths: [Glob]?
    /// Whether the audit log keeps the bytes (request and response); digests are always kept.
    public var logContent: Bool

    public func allowsPort(_ port: UInt16) -> Bool { ports.contains { $0.contains(port) } }
}

/// What the host carries: `tls` a CONNECT tunnel it cannot read, `http` plain requests it
/// judges one by one.
public enum EgressScheme: String, Sendable, Hashable {
    case http, tls
}

public enum EgressRuleScheme: String, Sendable, Hashable {
    case http, tls, any

    public func allows(_ scheme: EgressScheme) -> Bool { self == .any || rawValue == scheme.rawValue }
    public func isWithin(_ other: EgressRuleScheme) -> Bool { other == .any || self == other }
}

/// `N` or `N-M`, 1–65535.
public struct PortRange: Sendable, Hashable, CustomStringConvertible {
    public let lower: UInt16
    public let upper: UInt16

    public init(_ lower: UInt16, _ upper: UInt16) {
        self.lower = lower
        self.upper = upper
    }

    public func contains(_ port: UInt16) -> Bool { lower <= port && port <= upper }
    public var description: String { lower == upper ? "\(lower)" : "\(lower)-\(upper)" }

    /// Whether every port of `ranges` is in `others` (a range may be covered by several).
    static func covers(_ others: [PortRange], _ ranges: [PortRange]) -> Bool {
        let merged = others.sorted { $0.lower < $1.lower }
        return ranges.allSatisfy { range in
            var next = Int(range.lower)
            for other in merged where Int(other.lower) <= next && Int(other.upper) >= next {
                next = Int(other.upper) + 1
                if next > Int(range.upper) { return true }
            }
            return false
        }
    }
}

/// `network.limits`: nil is no cap.
public struct NetworkLimits: Sendable, Equatable {
    /// Connections (tunnels and requests in flight) open at once.
    public var connections: Int?
    /// Bytes both ways over the whole session.
    public var bytesPerSession: Int?
    public var rules = NetworkLimitRules()

    public static let maximumConnections = 4096

    public init() {}

    public static func == (a: NetworkLimits, b: NetworkLimits) -> Bool {
        a.connections == b.connections && a.bytesPerSession == b.bytesPerSession
    }
}

public struct NetworkLimitRules: Sendable {
    public var connections = RuleRef("network.limits.connections", line: nil)
    public var bytesPerSession = RuleRef("network.limits.bytes_per_session", line: nil)
}

/// `brain`: the model endpoint the host calls for the agent, with the agent's key kept on the
/// host. nil (no section): no Brain calls. docs/policy.md, "brain".
public struct Brain: Sendable, Equatable {
    public var rule: RuleRef
    public var baseURL: BaseURL
    /// Model names allowed, text globs.
    public var models: [Glob]
    /// nil: no cap.
    public var maxTokensPerCall: Int?
    public var maxTokensPerSession: Int?
    public var maxRequests: Int?
    /// Whether the audit log keeps prompts and replies; digests are always kept.
    public var logContent: Bool
    /// "brain.models", "brain.max_tokens_per_call", ... where written (else the section's line).
    public var modelsRule: RuleRef
    public var maxTokensPerCallRule: RuleRef
    public var maxTokensPerSessionRule: RuleRef
    public var maxRequestsRule: RuleRef

    public static func == (a: Brain, b: Brain) -> Bool {
        a.baseURL == b.baseURL && a.models == b.models && a.maxTokensPerCall == b.maxTokensPerCall
            && a.maxTokensPerSession == b.maxTokensPerSession && a.maxRequests == b.maxRequests && a.logContent == b.logContent
    }

    public static let maximumModelNameLength = 256
}

/// `brain.base_url`: `http` or `https`, a host (a name or an address; IPv6 in brackets), an
/// optional port, a path prefix; no user, query or fragment.
public struct BaseURL: Sendable, Hashable, CustomStringConvertible {
    public enum Scheme: String, Sendable, Hashable {
        case http, https
        var defaultPort: UInt16 { self == .https ? 443 : 80 }
    }

    public let scheme: Scheme
    public let host: HostName.Parsed
    public let port: UInt16
    /// Normal, starting with "/"; "/" when none was written.
    public let path: String

    public static let maximumLength = 2048

    public var description: String { "\(scheme.rawValue)://\(authority)\(path == "/" ? "" : path)" }

    /// Host and port as a `Host` field carries them (RFC 9110 §7.2): IPv6 in brackets, the
    /// port only when it is not the scheme's own.
    public var authority: String {
        let hostText: String
        switch host {
        case .name(let name): hostText = name
        case .address(.v6(let bits)): hostText = "[\(IPAddress.v6(bits))]"
        case .address(let address): hostText = address.description
        }
        return hostText + (port == scheme.defaultPort ? "" : ":\(port)")
    }

    /// RFC 3986 §3 in the subset above; the text is bounded first and read as bytes.
    public static func parse(_ text: String) -> Result<BaseURL, TextProblem> {
        let bytes = Array(text.utf8)
        guard bytes.count <= maximumLength else { return .failure(TextProblem("is longer than \(maximumLength) bytes")) }
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return .failure(TextProblem("has spaces, control or non-ASCII characters")) }
        let scheme: Scheme
        var rest: ArraySlice<UInt8>
        if bytes.starts(with: "https://".utf8) {
            scheme = .https
            rest = bytes.dropFirst(8)
        } else if bytes.starts(with: "http://".utf8) {
            scheme = .http
            rest = bytes.dropFirst(7)
        } else {
            return .failure(TextProblem("must start with https:// or http://"))
        }
        if rest.contains(UInt8(ascii: "?")) || rest.contains(UInt8(ascii: "#")) { return .failure(TextProblem("must have no query or fragment")) }
        let slash = rest.firstIndex(of: UInt8(ascii: "/")) ?? rest.endIndex
        let authority = rest[..<slash]
        if authority.contains(UInt8(ascii: "@")) { return .failure(TextProblem("must have no user name or password (keys stay in the host's configuration)")) }
        var hostText = authority
        var portText: ArraySlice<UInt8>?
        if authority.first == UInt8(ascii: "[") {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else { return .failure(TextProblem("has an unclosed \"[\"")) }
            hostText = authority[(authority.startIndex + 1)..<close]
            let after = authority[(close + 1)...]
            if !after.isEmpty {
                guard after.first == UInt8(ascii: ":") else { return .failure(TextProblem("has text after \"]\" that is not a port")) }
                portText = after.dropFirst()
            }
            guard hostText.contains(UInt8(ascii: ":")) else { return .failure(TextProblem("has brackets around something that is not an IPv6 address")) }
        } else if let colon = authority.firstIndex(of: UInt8(ascii: ":")) {
            hostText = authority[..<colon]
            portText = authority[(colon + 1)...]
        }
        let host: HostName.Parsed
        switch HostName.normalize(String(decoding: hostText, as: UTF8.self)) {
        case .success(.name(let name)) where !hostText.elementsEqual(name.utf8):
            return .failure(TextProblem("host \(quoted(String(decoding: hostText, as: UTF8.self))) must be written as \(quoted(name))"))
        case .success(let parsed): host = parsed
        case .failure(let problem): return .failure(TextProblem("host \(quoted(String(decoding: hostText, as: UTF8.self))) \(problem)"))
        }
        var port = scheme.defaultPort
        if let portText {
            guard (1...5).contains(portText.count), portText.allSatisfy(IPAddress.isDigit), portText.first != UInt8(ascii: "0"),
                  let value = UInt16(String(decoding: portText, as: UTF8.self))
            else { return .failure(TextProblem("has a port that is not a whole number from 1 to 65535")) }
            port = value
        }
        var path = "/"
        if slash < rest.endIndex {
            let written = String(decoding: rest[slash...], as: UTF8.self)
            switch HTTPPath.check(written) {
            case .success(let judged): path = judged
            case .failure(let problem): return .failure(TextProblem("path \(quoted(written)) \(problem)"))
            }
        }
        return .success(BaseURL(scheme: scheme, host: host, port: port, path: path))
    }
}

/// An HTTP request path as the policy judges it: the request target's path without its query
/// (RFC 9112 §3.2.1 origin-form), in normal form, with nothing a server could decode into
/// another path.
public enum HTTPPath {
    /// The path as rules match it (one trailing "/" dropped), or why it is refused.
    public static func check(_ path: String) -> Result<String, TextProblem> {
        if let problem = problem(path) { return .failure(TextProblem(problem)) }
        return .success(path.utf8.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path)
    }

    static func problem(_ path: String) -> String? {
        let bytes = Array(path.utf8)
        guard bytes.count <= PathNormalization.maximumLength else { return "is longer than \(PathNormalization.maximumLength) bytes" }
        guard bytes.first == UInt8(ascii: "/") else { return "does not start with \"/\"" }
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) else {
            return "has spaces, control characters, \"\\\" or non-ASCII bytes (send them percent-encoded)"
        }
        if bytes.contains(UInt8(ascii: "?")) || bytes.contains(UInt8(ascii: "#")) { return "has a query or fragment (judge the path alone)" }
        // %2e (.), %2f (/), %5c (\) and %25 (%) decode into a path other than the one judged.
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%") {
                guard i + 2 < bytes.count, let high = IPAddress.hexValue(bytes[i + 1]), let low = IPAddress.hexValue(bytes[i + 2]) else {
                    return "has a \"%\" that is not followed by two hex digits"
                }
                if [0x2E, 0x2F, 0x5C, 0x25].contains(high << 4 | low) { return "has a percent-encoded \".\", \"/\", \"\\\" or \"%\"" }
                i += 3
            } else {
                i += 1
            }
        }
        guard case .success(let normal) = PathNormalization.normalize(path) else { return "is not a path" }
        // One trailing "/" is how directories are named in URLs; anything else must be normal.
        let trimmed = bytes.count > 1 && bytes.last == UInt8(ascii: "/") ? String(path.dropLast()) : path
        if !trimmed.utf8.elementsEqual(normal.utf8) { return "is not in normal form (\(normal)): no \"//\", \".\" or \"..\"" }
        return nil
    }
}

extension AgentPolicy {
    /// The `network.egress` rule an allowed connect or HTTP request decision names (for its
    /// log_content).
    public func egressRule(for decision: Decision) -> EgressRule? {
        guard decision.isAllowed else { return nil }
        return network.egress.first { $0.rule == decision.rule }
    }
}

/// Why a URL or request path is refused; reads after the text, `"x" `.
public struct TextProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
