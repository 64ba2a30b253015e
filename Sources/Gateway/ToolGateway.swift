import Audit
import Crypto
import Doors
import Hands
import Merkle
import Policy

/// The one path every Hands call takes (ARCHITECTURE: the gateway is the only way an agent's
/// request gets a side effect): the session's limits and the policy decide, the request and
/// the decision are logged, and only an allowed call reaches the guest; its result is logged
/// by digest before the caller sees it. Without a policy every call is allowed (and
/// still logged, when there is a log); without a log nothing is recorded.
public final class ToolGateway {
    private let client: DoorsClient
    private let session: GovernedSession

    public init(agent: String, client: DoorsClient, policy: AgentPolicy?, log: AuditLog?) {
        self.client = client
        session = GovernedSession(agent: agent, policy: policy, log: log, resolver: GuestResolver(client: client))
    }

    public var agent: String { session.agent }

    /// Hears each call's outcome; see `GovernedSession.observe`.
    public var observe: ((CallObservation) -> Void)? {
        get { session.observe }
        set { session.observe = newValue }
    }

    /// Records a lifecycle event (VM start or stop, policy load) in the log, if there is one.
    public func record(_ event: Lifecycle) throws(GatewayError) {
        try session.record(event)
    }

    /// Runs a program in the guest, if the policy allows it. An exec without a timeout gets
    /// the policy's per-call timeout.
    public func exec(_ request: ExecRequest, input: DoorsClient.ExecInput,
                     output: (Bool, [UInt8]) -> Void) throws(GatewayError) -> ExitReport {
        var request = request
        if request.timeoutMilliseconds == nil, let timeout = session.policy?.limits.callTimeout {
            request.timeoutMilliseconds = UInt32(clamping: timeout.components.seconds * 1000
                                                 + timeout.components.attoseconds / 1_000_000_000_000_000)
        }
        let arguments: [UInt8]
        do { arguments = try GovernedSession.arguments(.exec(request)) } catch { throw .hands(.protocolError(error)) }
        let id = try session.admit(.exec(request), tool: "exec", arguments: arguments)
        var result = ResultHasher()
        let report: ExitReport
        do {
            report = try client.exec(request, input: input) { isStdout, chunk in
                result.add(stream: isStdout ? 1 : 2, chunk)
                output(isStdout, chunk)
            }
        } catch {
            try session.finish(id, status: -1, result: result)
            throw .hands(error)
        }
        let status: Int64 = switch report.status {
        case .exited(let code): Int64(code)
        case .signaled(let signal): 128 + Int64(signal)
        }
        try session.finish(id, status: status, result: result)
        return report
    }
}

/// The governance of one agent's session, without the guest: limits, the policy, and the log.
/// The policy judges before anything is written, so a call costs two log transactions: request
/// and decision together, then the result.
/// `ToolGateway` puts each call through `admit` before the guest sees it and `finish` after;
/// the gateway benchmark drives it directly.
public final class GovernedSession {
    public let agent: String
    public let policy: AgentPolicy?
    private let log: AuditLog?
    private let resolver: any PathResolver
    private var limits: LimitTracker?
    private let started = ContinuousClock.now
    private var nextRequest: UInt64 = 1
    /// Hears each call's outcome (what `momin run --record` keeps), after the log has it.
    public var observe: ((CallObservation) -> Void)?
    private var pending: [UInt64: CallObservation] = [:]

    public init(agent: String, policy: AgentPolicy?, log: AuditLog?, resolver: any PathResolver) {
        self.agent = agent
        self.policy = policy
        self.log = log
        self.resolver = resolver
        limits = policy.map { LimitTracker(limits: $0.limits) }
    }

    public func record(_ event: Lifecycle) throws(GatewayError) {
        try append(.lifecycle(event))
    }

    private var elapsed: Duration { ContinuousClock.now - started }

    /// Counts the call against the limits and asks the policy, then logs the request and the
    /// decision together (one transaction: both are in the log before anything runs, or
    /// neither is and nothing runs); returns the request's id when allowed, throws `.denied`
    /// when not.
    public func admit(_ call: ToolCall, tool: String, arguments: [UInt8]) throws(GatewayError) -> UInt64 {
        let id = nextRequest
        nextRequest += 1
        var decision: Policy.Decision?
        if var tracker = limits {
            let admitted = tracker.admitCall(elapsed: elapsed)
            limits = tracker
            if !admitted.isAllowed { decision = admitted }
        }
        if decision == nil, let policy { decision = policy.evaluate(call, resolver: resolver) }
        let verdict: Audit.Decision.Verdict = decision.map { $0.isAllowed ? .allow : .deny } ?? .allow
        try append([
            .toolRequest(ToolRequest(requestID: id, agent: agent, tool: tool, arguments: arguments)),
            .decision(Audit.Decision(
                requestID: id, verdict: verdict, rule: decision?.rule.id ?? "no-policy",
                reason: decision.map { $0.isAllowed ? "" : $0.reason } ?? "")),
        ])
        var observation = CallObservation(arguments: arguments, allowed: decision?.isAllowed ?? true,
                                          rule: decision?.rule.id ?? "no-policy")
        if let decision, !decision.isAllowed {
            observe?(observation)
            throw .denied(decision)
        }
        if observe != nil {
            observation.status = nil
            pending[id] = observation
        }
        return id
    }

    /// Counts the call's output against the limits and logs its digest.
    public func finish(_ id: UInt64, status: Int64, result: ResultHasher) throws(GatewayError) {
        if var tracker = limits {
            _ = tracker.recordOutput(bytes: Int(clamping: result.byteCount), elapsed: elapsed)
            limits = tracker
        }
        let digest = result.digest
        try append(.resultDigest(ResultDigest(requestID: id, status: status, byteCount: result.byteCount, sha256: digest)))
        if var observation = pending.removeValue(forKey: id) {
            observation.status = status
            observation.byteCount = result.byteCount
            observation.digest = digest
            observe?(observation)
        }
    }

    private func append(_ event: AuditEvent) throws(GatewayError) {
        guard let log else { return }
        do { _ = try log.append(event) } catch { throw .audit(error) }
    }

    private func append(_ events: [AuditEvent]) throws(GatewayError) {
        guard let log else { return }
        do { _ = try log.append(contentsOf: events) } catch { throw .audit(error) }
    }

    /// The request's arguments as the log keeps them: the Doors encoding of the request frame
    /// (request id 1), canonical and versioned already (docs/doors-protocol.md). A request the
    /// protocol cannot carry is an error, never an empty record.
    public static func arguments(_ message: DoorsMessage) throws(DoorsError) -> [UInt8] {
        try FrameEncoder().encode(Frame(requestID: 1, message))
    }
}

/// SHA-256 over a call's output as it streams by, each chunk preceded by its stream's number
/// (1 stdout, 2 stderr) so bytes moved from one stream to the other change the digest.
public struct ResultHasher {
    private var hasher = SHA256()
    public private(set) var byteCount: UInt64 = 0

    public init() {}

    public mutating func add(stream: UInt8, _ chunk: [UInt8]) {
        hasher.update(data: [stream])
        hasher.update(data: chunk)
        byteCount += UInt64(chunk.count)
    }

    public var digest: MerkleHash { MerkleHash(bytes: Array(hasher.finalize()))! }
}

/// Why the gateway did not return a result.
public enum GatewayError: Error, CustomStringConvertible {
    /// The policy or a limit said no; the guest never saw the call.
    case denied(Policy.Decision)
    case hands(HandsError)
    /// The log could not record the call: nothing runs unrecorded.
    case audit(AuditError)

    public var description: String {
        switch self {
        case .denied(let decision):
            "denied by policy (\(decision.rule.id)\(decision.rule.line.map { ", line \($0)" } ?? "")): \(decision.reason)"
        case .hands(let error): error.description
        case .audit(let error): "audit log: \(error)"
        }
    }
}
