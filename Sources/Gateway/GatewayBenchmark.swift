import Audit
import Doors
import Policy

/// What the gateway costs per call without the guest: the governance a call goes through
/// before and after the guest runs it (limits, policy evaluation with lexical resolution,
/// three log entries, a signed head every `signEvery`), timed over `calls` allowed calls.
/// `Scripts/bench/gateway` prints its figures; nothing here is asserted in tests.
public enum GatewayBenchmark {
    public struct Figures: Sendable {
        public var calls: Int
        /// Nanoseconds per call with the policy alone, the log alone, and both.
        public var policyOnly: Double
        public var auditOnly: Double
        public var both: Double
    }

    /// `call` must be allowed by `policy` (each round starts a fresh session, so the cycle
    /// limit must allow `calls`); `logPath(round)` names a new log per round.
    public static func run(policy: AgentPolicy, call: ExecRequest, calls: Int,
                           openLog: (String) throws -> AuditLog) throws -> Figures {
        let arguments = try GovernedSession.arguments(.exec(call))
        let output = Array("benchmark output\n".utf8)
        func round(_ policy: AgentPolicy?, _ log: AuditLog?) throws -> Double {
            let session = GovernedSession(agent: "bench", policy: policy, log: log, resolver: LexicalResolver())
            let clock = ContinuousClock()
            let start = clock.now
            for _ in 0..<calls {
                let id = try session.admit(.exec(call), tool: "exec", arguments: arguments)
                var result = ResultHasher()
                result.add(stream: 1, output)
                try session.finish(id, status: 0, result: result)
            }
            let elapsed = clock.now - start
            try log?.close()
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return seconds * 1e9 / Double(calls)
        }
        return Figures(calls: calls, policyOnly: try round(policy, nil), auditOnly: try round(nil, openLog("audit-only")),
                       both: try round(policy, openLog("governed")))
    }
}
