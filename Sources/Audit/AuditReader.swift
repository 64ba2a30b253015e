import Foundation
import GRDB
import SignedLog

/// Reads a log's entries in index order, beside its writer if there is one (a read-only
/// connection, one read transaction: a consistent snapshot). It checks nothing: `AuditVerifier`
/// says whether the entries can be trusted.
public enum AuditReader {
    /// The log's identity (docs/audit.md, "Log identity"); an error naming the finding when it
    /// is missing or malformed.
    public static func logID(path: String) throws(AuditError) -> LogID {
        let found = try catchingSQL(path) {
            let queue = try Schema.file.openReader(path: path)
            defer { try? queue.close() }
            return try queue.read(LogID.read)
        }
        switch found {
        case .success(let id): return id
        case .failure(let finding): throw .database(path: path, message: "\(finding)")
        }
    }

    /// The last signed head, as stored (`momin audit head`): nil if the log has none; an error
    /// naming the finding when the log's identity or the head's row is malformed. Its signature
    /// is not checked here.
    public static func latestHead(path: String) throws(AuditError) -> SignedTreeHead? {
        let found = try catchingSQL(path) {
            let queue = try Schema.file.openReader(path: path)
            defer { try? queue.close() }
            return try queue.read { db -> Result<SignedTreeHead?, AuditFinding> in
                switch try LogID.read(db) {
                case .failure(let finding): return .failure(finding)
                case .success(let logID):
                    guard let stored = try Schema.rows.lastHead(db, make: SignedTreeHead.maker(logID)) else { return .success(nil) }
                    return stored.checked().map { $0 }
                }
            }
        }
        switch found {
        case .success(let head): return head
        case .failure(let finding): throw .database(path: path, message: "\(finding)")
        }
    }

    public static func records(path: String) throws(AuditError) -> [AuditRecord] {
        try catchingSQL(path) {
            let queue = try Schema.file.openReader(path: path)
            defer { try? queue.close() }
            return try queue.read { db in
                try Data.fetchAll(db, sql: #"SELECT data FROM entries ORDER BY "index""#).map { data in
                    do { return try AuditRecord(leafData: Array(data)) } catch {
                        throw AuditError.database(path: path, message: "an entry does not decode: \(error) (momin audit verify says which)")
                    }
                }
            }
        }
    }
}
