import Audit
import Doors
import Merkle
import Policy
import Synchronization

/// The governance of one agent's session, without the guest: limits, the policy, and the log.
/// The policy judges before anything is written, so a call costs two log transactions: request
/// and decision together, then the result.
/// `ToolGateway` puts each call through `admit` before the guest sees it and `finish` after;
/// the gateway benchmark drives it directly.
///
/// Thread-safe: an agent's exec and the hands calls it makes from inside its VM share one
/// session, from several threads; each admit, finish and record runs under one lock.
public final class GovernedSession: @unchecked Sendable {
    public let agent: String
    public let policy: AgentPolicy?
    private let log: (any AuditSink)?
    private let resolver: any PathResolver
    private let limits: (any SessionLimits)?
    private let requestIDs: RequestNumbers
    private let lock = Mutex(())
    /// Hears each call's outcome (what `momin run --record` keeps), after the log has it.
    public var observe: ((CallObservation) -> Void)?
    /// Who asked for this session's calls through the API, logged with each request
    /// (`ToolRequest.caller`); set before the first call.
    public var caller: String?
    private var pending: [UInt64: CallObservation] = [:]
    /// Calls whose output went past the output limit: they end denied once logged.
    private var overLimit: [UInt64: Policy.Decision] = [:]

    /// Without `limits`, the policy's limits are counted in this process.
    /// Without `requestIDs`, calls are numbered from 1; agents sharing one log share one
    /// `RequestNumbers`, so a result digest names its request unambiguously.
    public init(agent: String, policy: AgentPolicy?, log: (any AuditSink)?, resolver: any PathResolver,
                limits: (any SessionLimits)? = nil, requestIDs: RequestNumbers? = nil) {
        self.agent = agent
        self.policy = policy
        self.log = log
        self.resolver = resolver
        self.limits = limits ?? policy.map { TreeLimits.inMemory(root: agent, limits: $0.limits).session(agent, limits: $0.limits) }
        self.requestIDs = requestIDs ?? RequestNumbers()
    }

    public func record(_ event: Lifecycle) throws(GatewayError) {
        try lock.withLock { _ throws(GatewayError) in try append([.lifecycle(event)]) }
    }

    /// Counts the call against the limits and asks the policy, then logs the request and the
    /// decision together (one transaction: both are in the log before anything runs, or
    /// neither is and nothing runs); returns the request's id when allowed, throws `.denied`
    /// when not.
    ///
    /// `peer`, asked only when the limits and the policy allow the call, may still deny it: the
    /// other side of a door, or the check of a sub-agent's policy against this one.
    public func admit(_ call: ToolCall, tool: String, arguments: [UInt8],
                      peer: (() -> Policy.Decision?)? = nil) throws(GatewayError) -> UInt64 {
        try admission(call, tool: tool, arguments: arguments, peer: peer).id
    }

    /// An admitted call: its request id, and the resolved paths the policy judged (what the
    /// guest must be sent); nil without a policy, or for a call with no paths.
    public struct Admission: Sendable, Equatable {
        public let id: UInt64
        public let judged: JudgedPaths?
        /// The allowing decision; nil without a policy.
        public var decision: Policy.Decision? = nil
    }

    /// `admit`, with the paths the policy judged.
    public func admission(_ call: ToolCall, tool: String, arguments: [UInt8],
                          peer: (() -> Policy.Decision?)? = nil) throws(GatewayError) -> Admission {
        // The policy is asked outside the lock: judging a path may wait on the guest's Resolve,
        // and the agent's other calls (its hands calls) must not wait behind a slow guest.
        let verdict = policy?.evaluate(call, resolver: resolver)
        return try lock.withLock { _ throws(GatewayError) in
            try admitLocked(call, verdict: verdict, tool: tool, arguments: arguments, peer: peer)
        }
    }

    private func admitLocked(_ call: ToolCall, verdict policyDecision: Policy.Decision?, tool: String, arguments: [UInt8],
                             peer: (() -> Policy.Decision?)?) throws(GatewayError) -> Admission {
        let id = try requestIDs.next()
        var decision: Policy.Decision?
        if let limits {
            let admitted = try limits.admitCall()
            if !admitted.isAllowed { decision = admitted }
        }
        if decision == nil { decision = policyDecision }
        if decision?.isAllowed ?? true, let peer, let refused = peer(), !refused.isAllowed { decision = refused }
        let verdict: Audit.Decision.Verdict = decision.map { $0.isAllowed ? .allow : .deny } ?? .allow
        try append([
            .toolRequest(ToolRequest(requestID: id, agent: agent, tool: tool, arguments: arguments, caller: caller)),
            .decision(Audit.Decision(
                requestID: id, verdict: verdict, rule: decision?.rule.id ?? "no-policy",
                reason: decision.map { $0.isAllowed ? "" : $0.reason } ?? "")),
        ])
        var observation = CallObservation(tool: tool, arguments: arguments, allowed: decision?.isAllowed ?? true,
                                          rule: decision?.rule.id ?? "no-policy")
        if let decision, !decision.isAllowed {
            observe?(observation)
            throw .denied(decision)
        }
        if observe != nil {
            observation.status = nil
            pending[id] = observation
        }
        return Admission(id: id, judged: decision?.judged, decision: decision)
    }

    /// How much output the next call may pass to the agent.
    func outputBudget() throws(GatewayError) -> OutputBudget {
        try lock.withLock { _ throws(GatewayError) in OutputBudget(remaining: try limits?.remainingOutputBytes() ?? .max) }
    }

    /// What is left of the session's wall time; nil when it has no limits.
    func remainingWallTime() throws(GatewayError) -> Duration? {
        try lock.withLock { _ throws(GatewayError) in try limits?.remainingWallTime() }
    }

    /// Counts the call's output against the limits (unless it is input the agent sent, as for
    /// a file write) and logs its digest. Output that went over the limit ends the call
    /// `.denied` by the limit, after the log has the result.
    public func finish(_ id: UInt64, status: Int64, result: ResultHasher, countsAsOutput: Bool = true) throws(GatewayError) {
        try lock.withLock { _ throws(GatewayError) in try finishLocked(id, status: status, result: result, countsAsOutput: countsAsOutput) }
    }

    private func finishLocked(_ id: UInt64, status: Int64, result: ResultHasher, countsAsOutput: Bool) throws(GatewayError) {
        var over: Policy.Decision?
        if countsAsOutput, let limits {
            let counted = try limits.recordOutput(bytes: Int(clamping: result.byteCount))
            if !counted.isAllowed { over = counted }
        }
        let digest = result.digest
        try append([.resultDigest(ResultDigest(requestID: id, status: status, byteCount: result.byteCount, sha256: digest))])
        if var observation = pending.removeValue(forKey: id) {
            observation.status = status
            observation.byteCount = result.byteCount
            observation.digest = digest
            observe?(observation)
        }
        if let over, over.why.isOutputLimit { throw .denied(over) }
    }

    /// Ends an admitted connection (docs/egress.md): its result digest (the bytes the agent
    /// received, `sha256` over them in order) and how it ended, in one transaction. Egress bytes
    /// are counted by the network limits, not as output.
    /// `exchange`: what a recorded session kept of it (docs/replay.md).
    public func finishConnection(_ id: UInt64, status: Int64, received: UInt64, sha256: MerkleHash, end: ConnectionEnd,
                                 exchange: CallObservation.Exchange? = nil) throws(GatewayError) {
        try finishRelayed(id, status: status, received: received, sha256: sha256, record: .connectionEnd(end), exchange: exchange)
    }

    /// Ends an admitted model call (docs/brain.md) the same way: its result digest (the response
    /// body the agent received) and its `brain-call` record, in one transaction.
    public func finishBrainCall(_ id: UInt64, status: Int64, received: UInt64, sha256: MerkleHash, call: BrainCall,
                                exchange: CallObservation.Exchange? = nil) throws(GatewayError) {
        try finishRelayed(id, status: status, received: received, sha256: sha256, record: .brainCall(call), exchange: exchange)
    }

    /// Ends an admitted call whose result is bytes the host fetched for the agent (a package's
    /// file): their count and their plain SHA-256, the digest an index publishes. Not output.
    public func finishFetched(_ id: UInt64, status: Int64, received: UInt64, sha256: MerkleHash) throws(GatewayError) {
        try finishRelayed(id, status: status, received: received, sha256: sha256, record: nil, exchange: nil)
    }

    private func finishRelayed(_ id: UInt64, status: Int64, received: UInt64, sha256: MerkleHash, record: AuditEvent?,
                               exchange: CallObservation.Exchange?) throws(GatewayError) {
        try lock.withLock { _ throws(GatewayError) in
            try append([.resultDigest(ResultDigest(requestID: id, status: status, byteCount: received, sha256: sha256))] + (record.map { [$0] } ?? []))
            if var observation = pending.removeValue(forKey: id) {
                observation.status = status
                observation.byteCount = received
                observation.digest = sha256
                observation.exchange = exchange
                observe?(observation)
            }
        }
    }

    private func append(_ events: [AuditEvent]) throws(GatewayError) {
        guard let log else { return }
        do { try log.append(batch: events) } catch { throw .audit(error) }
    }

    /// The request's arguments as the log keeps them: the Doors encoding of the request frame
    /// (request id 1), canonical and versioned already (docs/doors-protocol.md). A request the
    /// protocol cannot carry is an error, never an empty record.
    public static func arguments(_ message: DoorsMessage) throws(DoorsError) -> [UInt8] {
        try FrameEncoder().encode(Frame(requestID: 1, message))
    }

    /// A hands or host call's arguments as the log keeps them: one `name=value` line each, in
    /// the order given, each ended by a newline.
    public static func arguments(lines: [String]) -> [UInt8] { Array((lines.joined(separator: "\n") + "\n").utf8) }
}
