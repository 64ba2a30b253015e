import Audit
import Buckets
import Crypto
import Doors
import GuestClient
import Merkle
import Policy
import Synchronization

/// The one path every Hands call takes (ARCHITECTURE: the gateway is the only way an agent's
/// request gets a side effect): the session's limits and the policy decide, the request and
/// the decision are logged, and only an allowed call reaches the guest; its result is logged
/// by digest before the caller sees it. Without a policy every call is allowed (and
/// still logged, when there is a log); without a log nothing is recorded.
/// One caller at a time: each agent's gateway is used by the one thread that runs its command.
public final class ToolGateway: @unchecked Sendable {
    private let client: DoorsClient

    /// `limits` defaults to counting in this process (`InProcessLimits` of the policy's limits);
    /// `requestIDs`, to numbering this session's calls from 1.
    public init(agent: String, client: DoorsClient, policy: AgentPolicy?, log: (any AuditSink)?,
                limits: (any SessionLimits)? = nil, requestIDs: RequestNumbers? = nil) {
        self.client = client
        session = GovernedSession(agent: agent, policy: policy, log: log, resolver: GuestResolver(client: client),
                                  limits: limits, requestIDs: requestIDs)
    }

    public var agent: String { session.agent }

    /// The session this gateway's calls count against, shared with the agent's hands calls.
    public let session: GovernedSession

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
    /// the policy's per-call timeout. Output past the session's output limit is not passed on:
    /// the exec is cancelled there, its result logged, and the call ends `.denied` by the limit.
    public func exec(_ request: ExecRequest, input: DoorsClient.ExecInput,
                     output: (Bool, [UInt8]) -> Void) throws(GatewayError) -> ExitReport {
        var request = request
        if request.timeoutMilliseconds == nil, let timeout = session.policy?.limits.callTimeout {
            request.timeoutMilliseconds = UInt32(clamping: timeout.components.seconds * 1000
                                                 + timeout.components.attoseconds / 1_000_000_000_000_000)
        }
        let id = try session.admit(.exec(request), tool: "exec", arguments: try Self.arguments(.exec(request)))
        var result = ResultHasher()
        var budget = try session.outputBudget()
        let report: ExitReport
        do {
            report = try client.exec(request, input: input, shouldKill: { budget.exceeded }) { isStdout, chunk in
                result.add(stream: isStdout ? 1 : 2, chunk)
                if let passed = budget.take(chunk) { output(isStdout, passed) }
            }
        } catch {
            try session.finish(id, status: -1, result: result)
            throw .guest(error)
        }
        let status: Int64 = switch report.status {
        case .exited(let code): Int64(code)
        case .signaled(let signal): 128 + Int64(signal)
        }
        try session.finish(id, status: status, result: result)
        return report
    }

    /// Copies a guest file to `received`, if the policy lets the agent read it. Bytes past the
    /// output limit are not asked for; a file longer than that ends the call `.denied`.
    public func readFile(_ request: ReadFileRequest, received: ([UInt8]) -> Void) throws(GatewayError) -> UInt64 {
        let id = try session.admit(.readFile(path: request.path), tool: "read-file",
                                   arguments: try Self.arguments(.readFile(request)))
        var budget = try session.outputBudget()
        var limited = request
        // One byte more than may pass, to learn whether the file goes on past the limit.
        let cap = UInt64(clamping: budget.remaining) &+ 1
        limited.length = min(request.length ?? .max, cap)
        var result = ResultHasher()
        let count: UInt64
        do {
            count = try client.readFile(limited) { chunk in
                result.add(stream: 1, chunk)
                if let passed = budget.take(chunk) { received(passed) }
            }
        } catch {
            try session.finish(id, status: -1, result: result)
            throw .guest(error)
        }
        try session.finish(id, status: 0, result: result)
        return min(count, UInt64(clamping: budget.passed))
    }

    /// Writes `source` (a host descriptor, read to its end) into a guest file, if the policy
    /// lets the agent write there. The result digest covers the bytes sent.
    public func writeFile(_ request: WriteFileRequest, from source: Int32) throws(GatewayError) -> UInt64 {
        let id = try session.admit(.writeFile(path: request.path), tool: "write-file",
                                   arguments: try Self.arguments(.writeFile(request)))
        var result = ResultHasher()
        let count: UInt64
        do {
            count = try client.writeFile(request, from: source) { result.add(stream: 0, $0) }
        } catch {
            try session.finish(id, status: -1, result: result, countsAsOutput: false)
            throw .guest(error)
        }
        try session.finish(id, status: 0, result: result, countsAsOutput: false)
        return count
    }

    private static func arguments(_ message: DoorsMessage) throws(GatewayError) -> [UInt8] {
        do { return try GovernedSession.arguments(message) } catch { throw .guest(.protocolError(error)) }
    }
}

/// How much output may still reach the agent in one call.
struct OutputBudget {
    let remaining: Int
    private(set) var passed = 0
    private(set) var exceeded = false

    init(remaining: Int) { self.remaining = remaining }

    /// Takes a chunk; returns the part of it that may pass, or nil when none may.
    mutating func take(_ chunk: [UInt8]) -> [UInt8]? {
        let allowed = max(0, min(chunk.count, remaining - passed))
        passed += allowed
        if allowed < chunk.count { exceeded = true }
        guard allowed > 0 else { return nil }
        return allowed == chunk.count ? chunk : Array(chunk[..<allowed])
    }
}

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
        self.limits = limits ?? policy.map { InProcessLimits($0.limits) }
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
        try lock.withLock { _ throws(GatewayError) in try admitLocked(call, tool: tool, arguments: arguments, peer: peer) }
    }

    private func admitLocked(_ call: ToolCall, tool: String, arguments: [UInt8],
                             peer: (() -> Policy.Decision?)?) throws(GatewayError) -> UInt64 {
        let id = requestIDs.next()
        var decision: Policy.Decision?
        if let limits {
            let admitted = try limits.admitCall()
            if !admitted.isAllowed { decision = admitted }
        }
        if decision == nil, let policy { decision = policy.evaluate(call, resolver: resolver) }
        if decision?.isAllowed ?? true, let peer, let refused = peer(), !refused.isAllowed { decision = refused }
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

    /// How much output the next call may pass to the agent.
    func outputBudget() throws(GatewayError) -> OutputBudget {
        try lock.withLock { _ throws(GatewayError) in OutputBudget(remaining: try limits?.remainingOutputBytes() ?? .max) }
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
        if let over, case .outputExceeded = over.why { throw .denied(over) }
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
}

/// Request ids for the sessions that share one log: each call gets the next, from 1.
public final class RequestNumbers: Sendable {
    private let last = Atomic<UInt64>(0)

    public init() {}

    public func next() -> UInt64 {
        last.wrappingAdd(1, ordering: .relaxed).newValue
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
    case guest(GuestCallError)
    /// The log could not record the call: nothing runs unrecorded.
    case audit(AuditError)
    /// The session's usage of its limits could not be read or kept.
    case limitState(String)
    /// The bucket store refused or failed the call (after the policy allowed it).
    case bucket(BucketError)

    public var description: String {
        switch self {
        case .denied(let decision):
            "denied by policy (\(decision.rule.id)\(decision.rule.line.map { ", line \($0)" } ?? "")): \(decision.reason)"
        case .guest(let error): error.description
        case .audit(let error): "audit log: \(error)"
        case .limitState(let why): "session limits: \(why)"
        case .bucket(let error): "bucket: \(error)"
        }
    }
}
