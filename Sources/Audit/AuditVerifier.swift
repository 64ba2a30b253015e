import Foundation
import GRDB
import Merkle
import SignedLog

/// Checks a whole log offline, with nothing but the file and the public key: every leaf hash
/// recomputed from its data, indices contiguous from 0, every leaf at its own index, the root
/// recomputed at every signed head's size and each head's signature. Reports the first problem
/// in log order (docs/audit.md, "What verify checks").
public enum AuditVerifier {
    public typealias Summary = LogWalk.Summary

    public enum Outcome: Equatable, Sendable {
        case intact(Summary)
        case broken(AuditFinding)
    }

    /// Where a log's public key is kept when the writer used its default key (`<db>.key`).
    public static func defaultPublicKeyPath(forLog path: String) -> String {
        AuditKey.publicKeyPath(forKey: path + ".key")
    }

    /// Verifies the log at `path`. Throws for what is not a readable audit log at all; a log
    /// that can be read but is wrong is `.broken`. With `strict`, unsigned entries are a finding.
    public static func verify(path: String, publicKey: AuditPublicKey, strict: Bool = false) throws(AuditError) -> Outcome {
        let walked = try catchingSQL(path) {
            let queue = try Schema.file.openReader(path: path)
            defer { try? queue.close() }
            // One read transaction: a consistent snapshot even while a writer appends.
            return try queue.read { db -> Result<Summary, AuditFinding> in
                let logID: LogID
                switch try LogID.read(db) {
                case .success(let id): logID = id
                case .failure(let finding): return .failure(finding)
                }
                return try LogWalk.run(db, rows: Schema.rows, key: publicKey, make: SignedTreeHead.maker(logID)) { row, position in
                    switch EntryCheck.check(row, position: position) {
                    case .success(let checked): .success(checked.leafHash)
                    case .failure(.finding(let finding)): .failure(finding)
                    case .failure(.misplaced(_, let claimed, let leafHash)):
                        .failure(try explain(db, position: position, claimed: claimed, leafHash: leafHash))
                    }
                }
            }
        }
        switch walked {
        case .failure(let finding): return .broken(finding)
        case .success(let summary): return strict ? summary.unsignedFinding.map(Outcome.broken) ?? .intact(summary) : .intact(summary)
        }
    }

    /// A well-formed leaf stored at another position than its own index: tells a copy, an
    /// insertion, a move and a deletion apart as far as the rows allow.
    private static func explain(_ db: Database, position: UInt64, claimed: UInt64, leafHash: MerkleHash) throws -> AuditFinding {
        if claimed < position {
            let original = try Data.fetchOne(db, sql: #"SELECT leaf_hash FROM entries WHERE "index" = ?"#, arguments: [Int64(claimed)])
            if let original, Array(original) == leafHash.bytes {
                return AuditFinding(place: .entry(position), kind: .inserted, detail: "a copy of entry \(claimed)")
            }
            if claimed == position - 1 {
                // Two rows in a row claim one index: the first of them may be a well-formed
                // insertion that the rows alone cannot tell from the original.
                return AuditFinding(place: .entry(claimed), kind: .inserted,
                                    detail: "entries \(claimed) and \(position) hold different leaves for index \(claimed): one of them was inserted")
            }
            return AuditFinding(place: .entry(position), kind: .reordered, detail: "holds the leaf of entry \(claimed)")
        }
        // Is the leaf of this position further on? Then rows were moved; if not, deleted.
        let rows = try Schema.rows.entries(db, from: position + 1)
        while let row = try rows.next() {
            guard case .blob(let data) = (row[3] as DatabaseValue).storage,
                  let header = try? AuditRecord.header(of: Array(data)), header.index == position else { continue }
            return AuditFinding(place: .entry(position), kind: .reordered,
                                detail: "holds the leaf of entry \(claimed), and its own leaf is stored at \(row[0] as DatabaseValue)")
        }
        return AuditFinding(place: .entry(position), kind: .deleted,
                            detail: "missing: the row in its place holds the leaf of entry \(claimed)")
    }
}
