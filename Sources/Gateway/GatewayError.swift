import Audit
import Buckets
import GuestClient
import Policy

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
