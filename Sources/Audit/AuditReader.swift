import Foundation
import GRDB
import SignedLog

/// Reads a log's entries in index order, beside its writer if there is one (a read-only
/// connection, one read transaction: a consistent snapshot). It checks nothing: `AuditVerifier`
/// says whether the entries can be trusted.
public enum AuditReader {
    /// The log's identity (docs/audit.md, "Log identity"); `.damaged` when it is missing or malformed.
    public static func logID(path: String) throws(AuditError) -> LogID {
        let found = try catchingSQL(path) {
            let queue = try Schema.file.openReader(path: path)
            defer { try? queue.close() }
            return try queue.read(LogID.read)
        }
        switch found {
        case .success(let id): return id
        case .failure(let finding): throw .damaged(path: path, finding: finding)
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
