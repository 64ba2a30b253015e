import Audit
import Glibc

/// Where a session's entries go: one open log (`momin run`, which holds it for the session),
/// or a log shared by many short-lived writers (`SharedAuditLog`).
public protocol AuditSink: AnyObject {
    /// Appends the events in one transaction: all of them are in the log, or none is.
    func append(batch events: [AuditEvent]) throws(AuditError)
}

extension AuditLog: AuditSink {
    public func append(batch events: [AuditEvent]) throws(AuditError) {
        _ = try append(contentsOf: events)
    }
}

/// An audit log that a long-lived VM's calls share: each `momin exec` is its own process, and
/// two may run at once. Every batch opens the log (waiting up to `lockWait` for another
/// writer), appends, and closes it, which signs a head over the batch: the log is never held
/// while a command runs in the guest.
public final class SharedAuditLog: AuditSink, Sendable {
    public let path: String
    private let options: AuditLog.Options

    /// `witnessPath`: the file every head signed over a batch is appended to (docs/audit.md).
    public init(path: String, keyPath: String?, witnessPath: String? = nil, lockWait: Duration = .seconds(30)) {
        self.path = path
        var options = AuditLog.Options(keyPath: keyPath, witnessPath: witnessPath)
        options.lockWait = lockWait
        self.options = options
    }

    public func append(batch events: [AuditEvent]) throws(AuditError) {
        let log = try AuditLog(path: path, options: options)
        do {
            _ = try log.append(contentsOf: events)
        } catch {
            try? log.close()
            throw error
        }
        try log.close()
    }
}
