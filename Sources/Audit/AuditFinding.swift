import Foundation
import GRDB
import Merkle

/// The first thing wrong in a log: where, what kind of tampering it looks like, and the detail.
public struct AuditFinding: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Place: Hashable, Sendable {
        case entry(UInt64)
        /// A signed head, by sequence number, and the tree size it claims when it is known.
        case head(sequence: UInt64, treeSize: UInt64?)
    }

    public enum Kind: String, Hashable, Sendable {
        /// A row's bytes no longer match what was written.
        case modified
        /// Rows are missing.
        case deleted
        /// A row was added that the writer did not append.
        case inserted
        /// Rows are not in the order they were appended.
        case reordered
        /// Rows were rewritten consistently (data and leaf hash), caught by a signed root: the
        /// place is the first entry that head covers beyond the head before it.
        case rewritten
        /// A head whose signature does not verify, or that is malformed.
        case forgedHead = "forged head"
        /// Entries after the last signed head (only a finding with --strict).
        case unsigned
        /// A stored value whose bytes no longer hash to the content address its entries name
        /// (bucket stores, docs/buckets.md; an audit log has no separate values).
        case valueModified = "value modified"
    }

    public var place: Place
    public var kind: Kind
    public var detail: String

    public init(place: Place, kind: Kind, detail: String) {
        self.place = place
        self.kind = kind
        self.detail = detail
    }

    /// The first bad entry index, for a finding about entries.
    public var entryIndex: UInt64? {
        if case .entry(let index) = place { index } else { nil }
    }

    public var description: String {
        switch place {
        case .entry(let index): "entry \(index): \(kind.rawValue): \(detail)"
        case .head(let sequence, let size?): "head \(sequence) (tree size \(size)): \(kind.rawValue): \(detail)"
        case .head(let sequence, nil): "head \(sequence): \(kind.rawValue): \(detail)"
        }
    }
}

/// A row of the heads table, read without trusting it.
struct StoredHead {
    var sequence: Int64?
    var head: SignedTreeHead?
    var frontier: [UInt8] = []
    /// Why `head` is nil.
    var problem: String?

    var place: AuditFinding.Place {
        .head(sequence: UInt64(max(sequence ?? 0, 0)), treeSize: head?.treeSize)
    }

    init(_ row: Row) {
        let values = (0..<6).map { row[$0] as DatabaseValue }
        guard case .int64(let sequence) = values[0].storage, sequence >= 0 else {
            problem = "its sequence number is \(values[0])"
            return
        }
        self.sequence = sequence
        guard case .int64(let size) = values[1].storage, size >= 0 else { problem = "its tree size is \(values[1])"; return }
        guard case .blob(let root) = values[2].storage, let rootHash = MerkleHash(bytes: root) else {
            problem = "its root is not 32 bytes"
            return
        }
        guard case .int64(let time) = values[3].storage else { problem = "its time is \(values[3])"; return }
        guard case .blob(let signature) = values[4].storage, signature.count == 64 else {
            problem = "its signature is not 64 bytes"
            return
        }
        if case .blob(let frontier) = values[5].storage { self.frontier = Array(frontier) }
        head = SignedTreeHead(sequence: UInt64(sequence), treeSize: UInt64(size), root: rootHash,
                              time: UInt64(bitPattern: time), signature: Array(signature))
    }
}

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
