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

    /// A head kept apart from the log (`momin audit head`'s output, a witness file's last line),
    /// which the log must still extend; `source` names it in findings.
    public struct KeptHead: Sendable {
        public var published: PublishedHead
        public var source: String

        public init(_ published: PublishedHead, source: String) {
            self.published = published
            self.source = source
        }
    }

    /// Verifies the log at `path`. Throws for what is not a readable audit log at all; a log
    /// that can be read but is wrong is `.broken`. With `strict`, unsigned entries are a finding.
    /// With `kept`, the log must also be a consistent extension of that head (RFC 6962 §2.1.2):
    /// this is what catches a log cut back to an earlier signed state, heads and all.
    public static func verify(path: String, publicKey: AuditPublicKey, strict: Bool = false,
                              kept: KeptHead? = nil) throws(AuditError) -> Outcome {
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
                // The leaf hashes, for the consistency proof from the kept head's size.
                var leaves: [MerkleHash] = []
                let make = SignedTreeHead.maker(logID)
                let walk = try LogWalk.run(db, rows: Schema.rows, key: publicKey, make: make) { row, position in
                    switch EntryCheck.check(row, position: position) {
                    case .success(let checked):
                        if kept != nil { leaves.append(checked.leafHash) }
                        return .success(checked.leafHash)
                    case .failure(.finding(let finding)): return .failure(finding)
                    case .failure(.misplaced(_, let claimed, let leafHash)):
                        return .failure(try explain(db, position: position, claimed: claimed, leafHash: leafHash))
                    }
                }
                guard case .success(let summary) = walk, let kept else { return walk }
                let heads = try Schema.rows.heads(db, make: make).compactMap(\.head)
                if let finding = check(kept, logID: logID, key: publicKey, summary: summary, leaves: leaves, heads: heads) {
                    return .failure(finding)
                }
                return walk
            }
        }
        switch walked {
        case .failure(let finding): return .broken(finding)
        case .success(let summary): return strict ? summary.unsignedFinding.map(Outcome.broken) ?? .intact(summary) : .intact(summary)
        }
    }

    /// What is wrong between an intact log and a head kept apart from it, if anything: the head
    /// must verify with the key, be of this log, sign no more entries than the log holds, have a
    /// root the log's first entries lead to (a consistency proof from its size to the log's,
    /// RFC 6962 §2.1.2, checked by RFC 9162 §2.1.4.2), and be the log's own head of its sequence number.
    static func check(_ kept: KeptHead, logID: LogID, key: AuditPublicKey, summary: Summary, leaves: [MerkleHash],
                      heads: [SignedTreeHead]) -> AuditFinding? {
        let head = kept.published.head
        let place = AuditFinding.Place.head(sequence: head.sequence, treeSize: head.treeSize)
        let source = "the head in \(kept.source)"
        guard head.isValid(for: key) else {
            let named = kept.published.keyFingerprint == key.fingerprint ? ""
                : " (it names key ed25519:\(kept.published.keyFingerprint.prefix(16)))"
            return AuditFinding(place: place, kind: .forgedHead, detail: "\(source) does not verify with key \(key)\(named)")
        }
        guard head.logID == logID else {
            return AuditFinding(place: place, kind: .otherLog, detail: "\(source) is of log \(head.logID), this log is \(logID)")
        }
        guard head.treeSize <= summary.entries else {
            let cut = head.treeSize - summary.entries == 1 ? "entry \(summary.entries) was cut"
                : "entries \(summary.entries)..\(head.treeSize - 1) were cut"
            return AuditFinding(place: .entry(summary.entries), kind: .deleted,
                                detail: "the log holds \(summary.entries) entries, \(source) signed \(head.treeSize): \(cut)")
        }
        do {
            let proof = try Merkle.consistencyProof(oldSize: Int(head.treeSize), leafHashes: leaves)
            try Merkle.verifyConsistency(oldSize: head.treeSize, newSize: summary.entries, oldRoot: head.root, newRoot: summary.root,
                                         proof: proof)
        } catch {
            return AuditFinding(place: place, kind: .rewritten,
                                detail: "the log is not an extension of \(source): the consistency proof from \(head.treeSize) to \(summary.entries) entries fails: \(error)")
        }
        guard head.sequence < UInt64(heads.count) else {
            let holds = heads.isEmpty ? "holds no heads" : "holds heads 0..\(heads.count - 1) only"
            return AuditFinding(place: .head(sequence: UInt64(heads.count), treeSize: nil), kind: .deleted,
                                detail: "missing: \(source) is head \(head.sequence) of this log, which \(holds)")
        }
        let own = heads[Int(head.sequence)]
        guard own == head else {
            return AuditFinding(place: .head(sequence: own.sequence, treeSize: own.treeSize), kind: .rewritten,
                                detail: "it is not \(source) (tree size \(head.treeSize), root \(head.root.hex)), though both verify: the key signed two histories")
        }
        return nil
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
