import Audit
import Gateway

/// A run refused before its VM booted, written to its audit log as `run-refused` with why
/// (docs/audit.md, "Refused runs"): its policy did not load, it asked for more than the
/// policy's caps, or the host refused the launch (no room in the ledger, no jail uid, the
/// name taken). The entry is signed at once, as every lifecycle event.
public enum RefusedRun {
    /// Appends the refusal (after `before`, in one transaction) to `log`, and returns the error
    /// to report: `refusal` itself, or, when the log could not take it, `refusal` saying so too
    /// (its kind, and so the exit status, unchanged).
    public static func record(_ refusal: HostError, vm: String, before: [Lifecycle] = [], in log: some AuditSink) -> HostError {
        do {
            try log.append(batch: (before + [.runRefused(vm: vm, reason: refusal.message)]).map(AuditEvent.lifecycle))
            return refusal
        } catch {
            return HostError(refusal.kind, "\(refusal.message); the audit log could not record the refusal: \(error)")
        }
    }

    /// The same for a log not open yet (a refusal found before it was opened): opens it, appends,
    /// closes it.
    public static func record(_ refusal: HostError, vm: String, before: [Lifecycle] = [], auditPath: String,
                              options: AuditLog.Options) -> HostError {
        let log: AuditLog
        do { log = try AuditLog(path: auditPath, options: options) } catch {
            return HostError(refusal.kind, "\(refusal.message); the audit log could not record the refusal: \(error)")
        }
        let reported = record(refusal, vm: vm, before: before, in: log)
        do { try log.close() } catch {
            return HostError(refusal.kind, "\(reported.message); the audit log could not record the refusal: \(error)")
        }
        return reported
    }
}
