import Audit
import Doors
import GuestClient
import Policy
import POSIX

/// The one path every tool call takes (ARCHITECTURE: the gateway is the only way an agent's
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

    /// How long past an exec's own timeout the host waits before cancelling it itself: a guest
    /// that keeps to the timeout it was sent never meets this.
    public static let execSlack = Duration.seconds(1)
    /// How long the host waits for an exec's Exit after cancelling it at its deadline, before
    /// it gives up on the guest (`DoorsClient.ExecDeadline`).
    public var exitGrace = Duration.seconds(5)

    /// Runs a program in the guest, if the policy allows it. An exec without a timeout gets
    /// the policy's per-call timeout. Output past the session's output limit is not passed on:
    /// the exec is cancelled there, its result logged, and the call ends `.denied` by the limit.
    /// The host holds the exec to its timeout and to the session's wall time itself
    /// (`hostDeadline`), whatever the guest does.
    public func exec(_ request: ExecRequest, input: DoorsClient.ExecInput, shouldKill: () -> Bool = { false },
                     killPollMilliseconds: Int32? = nil,
                     output: (Bool, [UInt8]) -> Void) throws(GatewayError) -> ExitReport {
        var request = request
        if request.timeoutMilliseconds == nil, let timeout = session.policy?.limits.callTimeout {
            request.timeoutMilliseconds = UInt32(clamping: timeout.components.seconds * 1000
                                                 + timeout.components.attoseconds / 1_000_000_000_000_000)
        }
        let admission = try session.admission(.exec(request), tool: "exec", arguments: try Self.arguments(.exec(request)))
        let id = admission.id
        var result = ResultHasher()
        var budget = try session.outputBudget()
        // What the guest runs is what was judged: the resolved program, from its file, in the
        // resolved directory (Doors version 2 walks them without symlinks). Without a policy the
        // guest finds the program itself, and the directory is resolved here.
        var sent = request
        if case .exec(let program, let cwd)? = admission.judged {
            sent.program = program
            sent.cwd = cwd
        } else if let cwd = request.cwd {
            do throws(GatewayError) { sent.cwd = try resolved(cwd, followFinal: true, what: "cwd") } catch {
                try session.finish(id, status: -1, result: result)
                throw error
            }
        }
        let deadline: DoorsClient.ExecDeadline?
        do throws(GatewayError) { deadline = try hostDeadline(sent) } catch {
            try session.finish(id, status: -1, result: result)
            throw error
        }
        let report: ExitReport
        do {
            report = try client.exec(sent, input: input, deadline: deadline, shouldKill: { budget.exceeded || shouldKill() },
                                     killPollMilliseconds: killPollMilliseconds) { isStdout, chunk in
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

    /// When the host cancels an exec and when it stops waiting for it: the exec's timeout plus
    /// `execSlack`, or the end of the session's wall time if that comes first; nil when neither
    /// applies (no policy and no timeout asked for).
    func hostDeadline(_ request: ExecRequest) throws(GatewayError) -> DoorsClient.ExecDeadline? {
        var spans: [Duration] = []
        if let milliseconds = request.timeoutMilliseconds { spans.append(.milliseconds(milliseconds) + Self.execSlack) }
        if let left = try session.remainingWallTime() { spans.append(left) }
        guard let span = spans.min() else { return nil }
        let cancel = MonotonicClock.nanoseconds() &+ Self.nanoseconds(span)
        return DoorsClient.ExecDeadline(cancel: cancel, abandon: cancel &+ Self.nanoseconds(exitGrace))
    }

    /// `span` in nanoseconds: 0 for none or less, and a century or more capped at 2^32 s.
    static func nanoseconds(_ span: Duration) -> UInt64 {
        guard span > .zero else { return 0 }
        let (seconds, attoseconds) = span.components
        guard seconds < 1 << 32 else { return (1 << 32) * 1_000_000_000 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }

    /// Copies a guest file to `received`, if the policy lets the agent read it. Bytes past the
    /// output limit are not asked for; a file longer than that ends the call `.denied`.
    public func readFile(_ request: ReadFileRequest, received: ([UInt8]) -> Void) throws(GatewayError) -> UInt64 {
        let admission = try session.admission(.readFile(path: request.path), tool: "read-file",
                                              arguments: try Self.arguments(.readFile(request)))
        let id = admission.id
        var budget = try session.outputBudget()
        var limited = request
        do throws(GatewayError) { limited.path = try path(request.path, judged: admission.judged) } catch {
            try session.finish(id, status: -1, result: ResultHasher())
            throw error
        }
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
        let admission = try session.admission(.writeFile(path: request.path), tool: "write-file",
                                              arguments: try Self.arguments(.writeFile(request)))
        let id = admission.id
        var result = ResultHasher()
        var sent = request
        do throws(GatewayError) { sent.path = try path(request.path, judged: admission.judged) } catch {
            try session.finish(id, status: -1, result: result, countsAsOutput: false)
            throw error
        }
        let count: UInt64
        do {
            count = try client.writeFile(sent, from: source) { result.add(stream: 0, $0) }
        } catch {
            try session.finish(id, status: -1, result: result, countsAsOutput: false)
            throw .guest(error)
        }
        try session.finish(id, status: 0, result: result, countsAsOutput: false)
        return count
    }

    /// Stat of a guest path, if the policy lets the agent read it (docs/policy.md: a stat is
    /// judged as a read of the path). The result digest covers the guest's answer as it came.
    public func stat(_ request: StatRequest) throws(GatewayError) -> FileStat {
        let call = ToolCall.stat(path: request.path, followSymlinks: request.followSymlinks)
        let admission = try session.admission(call, tool: "stat", arguments: try Self.arguments(.stat(request)))
        var result = ResultHasher()
        var sent = request
        do throws(GatewayError) { sent.path = try path(request.path, judged: admission.judged, followFinal: request.followSymlinks) } catch {
            try session.finish(admission.id, status: -1, result: result)
            throw error
        }
        let answer: FileStat
        do { answer = try client.stat(sent) } catch {
            try session.finish(admission.id, status: -1, result: result)
            throw .guest(error)
        }
        result.add(stream: 1, try Self.arguments(.statResult(answer)))
        try session.finish(admission.id, status: 0, result: result)
        return answer
    }

    /// The entries of a guest directory, if the policy lets the agent read it. The result
    /// digest covers the guest's batches as they came; they count against the output limit.
    public func list(_ path: String) throws(GatewayError) -> [DirectoryEntry] {
        let admission = try session.admission(.list(path: path), tool: "list", arguments: try Self.arguments(.list(path: path)))
        var result = ResultHasher()
        let sent: String
        do throws(GatewayError) { sent = try self.path(path, judged: admission.judged) } catch {
            try session.finish(admission.id, status: -1, result: result)
            throw error
        }
        let batches: [[DirectoryEntry]]
        do { batches = try client.list(sent) } catch {
            try session.finish(admission.id, status: -1, result: result)
            throw .guest(error)
        }
        for batch in batches { result.add(stream: 1, try Self.arguments(.listEntries(batch))) }
        try session.finish(admission.id, status: 0, result: result)
        return batches.flatMap { $0 }
    }

    /// The path to send the guest for a file call: the one the policy judged, resolved; or,
    /// with no policy, `raw` resolved here the same way (normalised, then every symlink followed
    /// by the guest's Resolve), since the guest walks what it is sent without symlinks.
    private func path(_ raw: String, judged: JudgedPaths?, followFinal: Bool = true) throws(GatewayError) -> String {
        if case .file(let path)? = judged { return path }
        return try resolved(raw, followFinal: followFinal, what: "path")
    }

    private func resolved(_ raw: String, followFinal: Bool, what: String) throws(GatewayError) -> String {
        let normal: String
        switch PathNormalization.normalize(raw) {
        case .success(let path): normal = path
        case .failure(let problem):
            throw .guest(.remote(ErrorReply(code: .invalidRequest, message: "\(what) \(raw) \(problem)")))
        }
        guard let canonical = GuestResolver(client: client).canonicalPath(normal, followFinalSymlink: followFinal) else {
            throw .guest(.remote(ErrorReply(code: .notFound,
                                            message: "\(what) \(raw) cannot be resolved (symlink loop, missing directory or error)")))
        }
        return canonical
    }

    private static func arguments(_ message: DoorsMessage) throws(GatewayError) -> [UInt8] {
        do { return try GovernedSession.arguments(message) } catch { throw .guest(.protocolError(error)) }
    }
}
