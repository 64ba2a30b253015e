import Audit
import Merkle
import Policy
import Synchronization

/// Model calls through the gateway (docs/brain.md): the policy's `brain` section judges the
/// model and the tokens asked for, the session's counters judge `max_requests` and
/// `max_tokens_per_session`, and request and decision are logged before the host connects to the
/// provider; how the call ended, after.
///
/// Tokens are held back at admission: a call that names no token cap is given one (the smaller
/// of `max_tokens_per_call` and what the session has left), and that cap is reserved until the
/// call ends, so calls made at once cannot together promise the provider more completion tokens
/// than the session has. What the provider then reports (prompt and completion tokens) is what
/// the session is charged; a prompt's tokens are known only then, so one call may take the
/// session past its cap by its prompt, and the next call is refused.
///
/// A call's logged arguments are one `name=value` line each: `model`, `max_tokens` (as asked, or
/// `none`), `stream`, and `body_sha256`, the digest of the request body as the agent sent it.
public final class GovernedBrain: Sendable {
    public let session: GovernedSession
    private let brain: Brain?
    private let state = Mutex(Usage())

    struct Usage {
        var requests = 0
        /// Tokens the provider reported (or, for a stream without usage, estimated).
        var used = 0
        /// Completion caps of calls still running.
        var reserved = 0
    }

    /// An allowed call: its request id, the completion cap the provider is held to (nil: the
    /// policy sets none), whether the request body must be given that cap (it named none), and
    /// whether the policy keeps content.
    public struct Admission: Sendable, Equatable {
        public let id: UInt64
        public let model: String
        public let stream: Bool
        public let completionCap: Int?
        public let addCap: Bool
        public let logContent: Bool
        let reserved: Int
    }

    public init(session: GovernedSession) {
        self.session = session
        self.brain = session.policy?.brain
    }

    /// The tool name model calls are logged and recorded under.
    public static let tool = "brain"

    /// The provider the policy names; nil: no Brain calls.
    public var baseURL: BaseURL? { brain?.baseURL }

    /// Judges and logs one call for `model`, asking for at most `maxTokens` completion tokens
    /// (nil: the request named no cap). Throws `.denied` with the decision when refused.
    public func admit(model: String, maxTokens: Int?, stream: Bool, bodySHA256: MerkleHash) throws(GatewayError) -> Admission {
        let fields = ["model=\(model)", "max_tokens=\(maxTokens.map(String.init) ?? "none")", "stream=\(stream)", "body_sha256=\(bodySHA256.hex)"]
        let arguments = GovernedSession.arguments(lines: fields)
        guard let brain else {
            let refusal = Policy.Decision.deny(.defaultDeny, .nothingAllowed("Brain calls"))
            _ = try? session.admit(.brain(model: model, maxTokens: maxTokens ?? 1), tool: Self.tool, arguments: arguments) { refusal }
            throw .denied(refusal)
        }
        // The policy judges the cap the provider will be held to: the request's own, else the
        // per-call one (the session's remainder is a count, judged below under the lock).
        let judged = maxTokens ?? brain.maxTokensPerCall ?? Int.max
        let granted = Mutex<(cap: Int?, reserved: Int)?>(nil)
        let admission: GovernedSession.Admission
        do {
            admission = try session.admission(.brain(model: model, maxTokens: judged), tool: Self.tool, arguments: arguments) { [self] in
                state.withLock { usage -> Policy.Decision? in
                    if let cap = brain.maxRequests, usage.requests >= cap {
                        return .refused(brain.maxRequestsRule, because: "\(usage.requests) requests made, at most \(cap) per session")
                    }
                    var cap = maxTokens ?? brain.maxTokensPerCall
                    if let sessionCap = brain.maxTokensPerSession {
                        let left = sessionCap - usage.used - usage.reserved
                        guard left > 0 else {
                            return .refused(brain.maxTokensPerSessionRule,
                                            because: "the session has used \(usage.used) tokens (\(usage.reserved) held by calls running), at most \(sessionCap)")
                        }
                        if let asked = maxTokens, asked > left {
                            return .refused(brain.maxTokensPerSessionRule,
                                            because: "\(asked) tokens asked for, \(left) left of the session's \(sessionCap)")
                        }
                        cap = min(cap ?? left, left)
                    }
                    usage.requests += 1
                    usage.reserved += cap ?? 0
                    granted.withLock { $0 = (cap, cap ?? 0) }
                    return nil
                }
            }
        } catch {
            release(granted.withLock { $0 })
            throw error
        }
        guard let (cap, reserved) = granted.withLock({ $0 }) else {
            throw .limitState("the policy allowed a Brain call without counting it")
        }
        return Admission(id: admission.id, model: model, stream: stream, completionCap: cap, addCap: maxTokens == nil && cap != nil,
                         logContent: brain.logContent, reserved: reserved)
    }

    /// Undoes the counting of a call that was counted but then refused.
    private func release(_ grant: (cap: Int?, reserved: Int)?) {
        guard let grant else { return }
        state.withLock {
            $0.requests -= 1
            $0.reserved -= grant.reserved
        }
    }

    /// Charges the call's tokens to the session, frees its reservation and logs how it ended.
    public func end(_ admission: Admission, _ call: BrainCall, status: Int64, received: UInt64, sha256: MerkleHash,
                    exchange: CallObservation.Exchange? = nil) throws(GatewayError) {
        state.withLock {
            $0.reserved -= admission.reserved
            $0.used += Int(clamping: call.promptTokens) + Int(clamping: call.completionTokens)
        }
        try session.finishBrainCall(admission.id, status: status, received: received, sha256: sha256, call: call, exchange: exchange)
    }

    /// Tokens charged to the session so far.
    public var tokensUsed: Int { state.withLock { $0.used } }
}
