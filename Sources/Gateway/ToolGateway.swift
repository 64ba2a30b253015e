import Audit
import Crypto
import Doors
import Hands
import Merkle
import Policy

/// The one path every Hands call takes (ARCHITECTURE: the gateway is the only way an agent's
/// request gets a side effect): the request is logged, the session's limits and the policy
/// decide, the decision is logged, and only an allowed call reaches the guest; its result is
/// logged by digest before the caller sees it. Without a policy every call is allowed (and
/// still logged, when there is a log); without a log nothing is recorded.
public final class ToolGateway {
    public let agent: String
    private let client: DoorsClient
    private let policy: AgentPolicy?
    private let log: AuditLog?
    private let resolver: GuestResolver
    private var limits: LimitTracker?
    private let started = ContinuousClock.now
    private var nextRequest: UInt64 = 1

    public init(agent: String, client: DoorsClient, policy: AgentPolicy?, log: AuditLog?) {
        self.agent = agent
        self.client = client
        self.policy = policy
        self.log = log
        resolver = GuestResolver(client: client)
        limits = policy.map { LimitTracker(limits: $0.limits) }
    }

    /// Records a lifecycle event (VM start or stop, policy load) in the log, if there is one.
    public func record(_ event: Lifecycle) throws(GatewayError) {
        try append(.lifecycle(event))
    }

    /// Runs a program in the guest, if the policy allows it. An exec without a timeout gets
    /// the policy's per-call timeout.
    public func exec(_ request: ExecRequest, input: DoorsClient.ExecInput,
                     output: (Bool, [UInt8]) -> Void) throws(GatewayError) -> ExitReport {
        var request = request
        if request.timeoutMilliseconds == nil, let timeout = policy?.limits.callTimeout {
            request.timeoutMilliseconds = UInt32(clamping: timeout.components.seconds * 1000
                                                 + timeout.components.attoseconds / 1_000_000_000_000_000)
        }
        let id = try admit(.exec(request), tool: "exec", arguments: Self.arguments(.exec(request)))
        var digest = SHA256()
        var bytes: UInt64 = 0
        let report: ExitReport
        do {
            report = try client.exec(request, input: input) { isStdout, chunk in
                digest.update(data: [isStdout ? 1 : 2])  // which stream, so moving bytes between them shows
                digest.update(data: chunk)
                bytes += UInt64(chunk.count)
                output(isStdout, chunk)
            }
        } catch {
            try finish(id, status: -1, bytes: bytes, digest: digest)
            throw .hands(error)
        }
        let status: Int64 = switch report.status {
        case .exited(let code): Int64(code)
        case .signaled(let signal): 128 + Int64(signal)
        }
        try finish(id, status: status, bytes: bytes, digest: digest)
        return report
    }

    // MARK: - The path

    private var elapsed: Duration { ContinuousClock.now - started }

    /// Logs the request, counts it against the limits, asks the policy, logs the decision;
    /// returns the request's id when allowed, throws `.denied` when not.
    private func admit(_ call: ToolCall, tool: String, arguments: [UInt8]) throws(GatewayError) -> UInt64 {
        let id = nextRequest
        nextRequest += 1
        try append(.toolRequest(ToolRequest(requestID: id, agent: agent, tool: tool, arguments: arguments)))
        var decision: Policy.Decision?
        if var tracker = limits {
            let admitted = tracker.admitCall(elapsed: elapsed)
            limits = tracker
            if !admitted.isAllowed { decision = admitted }
        }
        if decision == nil, let policy { decision = policy.evaluate(call, resolver: resolver) }
        let verdict: Audit.Decision.Verdict = decision.map { $0.isAllowed ? .allow : .deny } ?? .allow
        try append(.decision(Audit.Decision(
            requestID: id, verdict: verdict, rule: decision?.rule.id ?? "no-policy",
            reason: decision.map { $0.isAllowed ? "" : $0.reason } ?? "")))
        if let decision, !decision.isAllowed { throw .denied(decision) }
        return id
    }

    private func finish(_ id: UInt64, status: Int64, bytes: UInt64, digest: SHA256) throws(GatewayError) {
        if var tracker = limits {
            _ = tracker.recordOutput(bytes: Int(clamping: bytes), elapsed: elapsed)
            limits = tracker
        }
        let hash = MerkleHash(bytes: Array(digest.finalize()))!
        try append(.resultDigest(ResultDigest(requestID: id, status: status, byteCount: bytes, sha256: hash)))
    }

    private func append(_ event: AuditEvent) throws(GatewayError) {
        guard let log else { return }
        do { _ = try log.append(event) } catch { throw .audit(error) }
    }

    /// The request's arguments as the log keeps them: the Doors encoding of the request frame,
    /// canonical and versioned already (docs/doors-protocol.md).
    static func arguments(_ message: DoorsMessage) -> [UInt8] {
        (try? FrameEncoder().encode(Frame(requestID: 0, message))) ?? []
    }
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
