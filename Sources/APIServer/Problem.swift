import FoundationEssentials
import Gateway
import Host

/// An API error as a problem details object (RFC 9457, `application/problem+json`): the status,
/// a short title for the kind of problem, and the detail, which is the CLI's message for the
/// same failure. A policy denial also names the rule that decided it and the policy's reason.
public struct Problem: Error, Codable, Equatable, Sendable {
    /// A URI naming the kind of problem (RFC 9457 §3.1.1): `about:blank` or one of ours.
    public var type: String
    public var title: String
    public var status: Int
    public var detail: String
    /// For a denial: the policy rule that decided (`policy.rule`, or a limit), and why.
    public var rule: String?
    public var reason: String?

    public init(status: Int, title: String, detail: String, type: String = "about:blank", rule: String? = nil, reason: String? = nil) {
        self.type = type
        self.title = title
        self.status = status
        self.detail = detail
        self.rule = rule
        self.reason = reason
    }

    /// The problem types this API names, under the docs (docs/api.md, "Errors").
    public enum Kind {
        public static let denied = "https://mominai.dev/problems/denied"
        public static let noRoom = "https://mominai.dev/problems/no-room"
        public static let vmFailed = "https://mominai.dev/problems/vm-failed"
        public static let guestFailed = "https://mominai.dev/problems/guest-failed"
    }

    func json() -> [UInt8] {
        (try? Array(APIServer.encoder.encode(self))) ?? Array(#"{"detail":"unencodable","status":500,"title":"problem","type":"about:blank"}"#.utf8)
    }

    /// A host failure as the API answers it: bad input 400, no room 503 (try later), a failed VM 502.
    public init(_ error: HostError) {
        switch error.kind {
        case .badInput: self.init(status: 400, title: "bad request", detail: error.message)
        case .noRoom: self.init(status: 503, title: "no room on this host", detail: error.message, type: Kind.noRoom)
        case .vmFailed: self.init(status: 502, title: "the VM failed", detail: error.message, type: Kind.vmFailed)
        case .failed: self.init(status: 500, title: "the host failed", detail: error.message)
        }
    }

    /// A gateway failure: a denial is 403 with its rule; a guest-side failure (no such file or
    /// program) 422; anything else, the VM or the log, 502.
    public init(_ error: GatewayError, vm: String, what: String) {
        switch error {
        case .denied(let decision):
            self.init(status: 403, title: "denied by policy", detail: "\(what): \(error)", type: Kind.denied,
                      rule: decision.rule.id, reason: decision.reason)
        case .guest(.remote):
            self.init(status: 422, title: "the guest refused", detail: "\(what): \(error)", type: Kind.guestFailed)
        default:
            self.init(status: 502, title: "the VM failed", detail: "VM \(vm): \(error)", type: Kind.vmFailed)
        }
    }
}
