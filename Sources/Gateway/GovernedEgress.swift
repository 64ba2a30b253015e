import Audit
import Merkle
import Policy
import Synchronization

/// Network connections through the gateway (docs/egress.md): the session's limits and the
/// policy's `network.egress` rules decide, the request and decision are logged before the host
/// resolves anything further or connects, and how the connection ended after. On top of the
/// session's own limits it counts `network.limits`: connections open at once, and bytes both
/// ways over the session.
///
/// A call's logged arguments are a small canonical text, one `name=value` line each in a fixed
/// order: `host`, `port`, `scheme`, then `method` and `target` (plain HTTP), and `resolved`, the
/// addresses the host's resolver answered, comma-separated; for a `.deb` from an apt mirror,
/// `package` and `file` last.
public final class GovernedEgress: Sendable {
    public let session: GovernedSession
    private let limits: NetworkLimits
    private let state = Mutex(Usage())

    struct Usage {
        var open = 0
        var bytes = 0
    }

    /// An allowed connection: its request id, the only addresses it may use, and whether its
    /// rule keeps content.
    public struct Admission: Sendable, Equatable {
        public let id: UInt64
        public let addresses: [IPAddress]
        public let rule: String
        public let logContent: Bool
    }

    /// The tool names connections are logged and recorded under: a tunnel, a plain request.
    public static let connectTool = "egress-connect"
    public static let httpTool = "egress-http"

    public init(session: GovernedSession) {
        self.session = session
        self.limits = session.policy?.network.limits ?? NetworkLimits()
    }

    /// Judges and logs one connection (`.connect`) or plain request (`.httpRequest`); on
    /// success it counts as open until `end`. Throws `.denied` with the decision when refused.
    /// `target` is the request target as forwarded (path and query), logged with plain requests.
    /// `refusal`, when given, is the host's own denial of the call, logged like the policy's.
    /// `package`: the `.deb` a request under an apt mirror's `pool/` asks for, logged as
    /// `package` and `file` lines after the rest.
    public func admit(_ call: ToolCall, target: String? = nil, refusal: Policy.Decision? = nil,
                      package: AptPoolFile? = nil) throws(GatewayError) -> Admission {
        let tool: String
        var fields: [String]
        switch call {
        case .connect(let host, let port, let scheme, let resolved):
            tool = Self.connectTool
            fields = ["host=\(host)", "port=\(port)", "scheme=\(scheme.rawValue)", "resolved=\(Self.list(resolved))"]
        case .httpRequest(let host, let port, let method, _, let resolved):
            tool = Self.httpTool
            fields = ["host=\(host)", "port=\(port)", "scheme=http", "method=\(method)", "target=\(target ?? "")",
                      "resolved=\(Self.list(resolved))"]
        default:
            preconditionFailure("GovernedEgress admits network calls only, not \(call)")
        }
        if let package { fields += ["package=\(package.name)", "file=\(package.file)"] }
        let arguments = GovernedSession.arguments(lines: fields)
        guard session.policy != nil else {
            // No policy is no egress: a run without one has nothing that could allow it.
            _ = try? session.admit(call, tool: tool, arguments: arguments) { .deny(.defaultDeny, .nothingAllowed("network egress without a policy")) }
            throw .denied(.deny(.defaultDeny, .nothingAllowed("network egress without a policy")))
        }
        let reserved = Mutex(false)
        let admission: GovernedSession.Admission
        do {
            admission = try session.admission(call, tool: tool, arguments: arguments) { [self] in
                if let refusal { return refusal }
                return state.withLock { usage -> Policy.Decision? in
                    if let cap = limits.connections, usage.open >= cap {
                        return .refused(limits.rules.connections, because: "\(usage.open) connections are open, at most \(cap) at once")
                    }
                    if let cap = limits.bytesPerSession, usage.bytes >= cap {
                        return .refused(limits.rules.bytesPerSession, because: "the session has moved \(usage.bytes) bytes, at most \(cap)")
                    }
                    usage.open += 1
                    reserved.withLock { $0 = true }
                    return nil
                }
            }
        } catch {
            if reserved.withLock({ $0 }) { state.withLock { $0.open -= 1 } }
            throw error
        }
        guard case .addresses(let addresses)? = admission.judged else {
            state.withLock { $0.open -= 1 }
            throw .limitState("the policy allowed a connection without judging its addresses")
        }
        let rule = admission.decision.flatMap { session.policy?.egressRule(for: $0) }
        return Admission(id: admission.id, addresses: addresses, rule: admission.decision?.rule.id ?? "", logContent: rule?.logContent ?? false)
    }

    /// Of `count` more bytes, how many the session's byte cap lets through (all of them without
    /// one); they are counted as moved.
    public func take(_ count: Int) -> Int {
        state.withLock { usage in
            let allowed = limits.bytesPerSession.map { max(0, min(count, $0 - usage.bytes)) } ?? count
            usage.bytes += allowed
            return allowed
        }
    }

    /// The session's byte cap, for the end reason of a connection cut by it.
    public var bytesPerSession: Int? { limits.bytesPerSession }

    /// Logs how the admitted connection ended and frees its place.
    public func end(_ admission: Admission, _ summary: ConnectionEnd, status: Int64, received: UInt64, sha256: MerkleHash,
                    exchange: CallObservation.Exchange? = nil) throws(GatewayError) {
        defer { state.withLock { $0.open -= 1 } }
        try session.finishConnection(admission.id, status: status, received: received, sha256: sha256, end: summary, exchange: exchange)
    }

    static func list(_ addresses: [IPAddress]) -> String { addresses.map(\.description).joined(separator: ",") }

    /// A logged connection's host as asked and the addresses it was judged with, read back from
    /// the arguments `admit` wrote (a replay's resolver, docs/replay.md).
    public static func judgedHost(arguments: [UInt8]) -> (host: String, resolved: [IPAddress])? {
        var host: String?
        var resolved: [IPAddress] = []
        for line in String(decoding: arguments, as: UTF8.self).split(separator: "\n") {
            if line.hasPrefix("host=") { host = String(line.dropFirst(5)) }
            if line.hasPrefix("resolved=") {
                resolved = line.dropFirst(9).split(separator: ",").compactMap { try? IPAddress.parse(String($0)).get() }
            }
        }
        return host.map { ($0, resolved) }
    }
}
