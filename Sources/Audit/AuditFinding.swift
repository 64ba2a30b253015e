import Foundation
import GRDB
import Merkle
import SignedLog

/// The first thing wrong in a log: where, what kind of tampering it looks like, and the detail.
public typealias AuditFinding = LogFinding

/// The checks on one entries row that need nothing but the row and its position.
enum EntryCheck {
    struct Checked {
        var leafHash: MerkleHash
        var data: [UInt8]
    }

    enum Problem: Error {
        /// A finding about this row as it stands.
        case finding(AuditFinding)
        /// A well-formed leaf at the wrong position: the caller works out why.
        case misplaced(position: UInt64, claimedIndex: UInt64, leafHash: MerkleHash)

        var finding: AuditFinding {
            switch self {
            case .finding(let finding): finding
            case .misplaced(let position, let claimed, _):
                AuditFinding(place: .entry(position), kind: .reordered, detail: "holds the leaf of entry \(claimed)")
            }
        }
    }

    /// Checks a row (columns "index", time, kind, data, leaf_hash) expected at `position`.
    static func check(_ row: Row, position: UInt64) -> Result<Checked, Problem> {
        func found(_ place: UInt64, _ kind: AuditFinding.Kind, _ detail: String) -> Result<Checked, Problem> {
            .failure(.finding(AuditFinding(place: .entry(place), kind: kind, detail: detail)))
        }
        let index = row[0] as DatabaseValue
        guard case .int64(let stored) = index.storage else {
            return found(position, .inserted, "a row whose index is \(index), not an integer")
        }
        if stored < 0 { return found(position, .inserted, "a row with the negative index \(stored)") }
        if stored < position { return found(UInt64(stored), .inserted, "a second row with index \(stored)") }
        if stored > position { return found(position, .deleted, "missing; the next stored entry is \(stored)") }
        guard case .blob(let dataBlob) = (row[3] as DatabaseValue).storage else {
            return found(position, .modified, "its data is not a blob")
        }
        guard case .blob(let hashBlob) = (row[4] as DatabaseValue).storage, let storedHash = MerkleHash(bytes: hashBlob) else {
            return found(position, .modified, "its leaf hash is not 32 bytes")
        }
        let data = Array(dataBlob)
        let leafHash = Merkle.leafHash(data)
        guard leafHash == storedHash else { return found(position, .modified, "its data does not match its leaf hash") }
        let record: AuditRecord
        do { record = try AuditRecord(leafData: data) } catch {
            return found(position, .modified, "its data is not an audit record: \(error)")
        }
        guard record.index == position else { return .failure(.misplaced(position: position, claimedIndex: record.index, leafHash: leafHash)) }
        guard case .int64(let time) = (row[1] as DatabaseValue).storage, UInt64(bitPattern: time) == record.time else {
            return found(position, .modified, "its time column does not match its leaf")
        }
        guard case .string(let kind) = (row[2] as DatabaseValue).storage, kind == record.event.kind else {
            return found(position, .modified, "its kind column does not match its leaf (\(record.event.kind))")
        }
        return .success(Checked(leafHash: leafHash, data: data))
    }
}
