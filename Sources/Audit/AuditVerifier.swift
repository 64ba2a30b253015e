import Foundation
import GRDB
import Glibc
import Merkle

/// Checks a whole log offline, with nothing but the file and the public key: every leaf hash
/// recomputed from its data, indices contiguous from 0, every leaf at its own index, the root
/// recomputed at every signed head's size and each head's signature. Reports the first problem
/// in log order (docs/audit.md, "What verify checks").
public enum AuditVerifier {
    public struct Summary: Equatable, Sendable {
        public var entries: UInt64
        public var signedHeads: Int
        /// The tree size of the last signed head (0 if there is none).
        public var signedSize: UInt64
        /// The root of all entries, signed or not.
        public var root: MerkleHash
        public var signedRoot: MerkleHash?
        /// Entries after the last signed head: a writer stopped before it signed them.
        public var unsignedEntries: UInt64 { entries - signedSize }
    }

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
        var info = stat()
        guard stat(path, &info) == 0 else { throw .cannotOpen(path: path, why: errnoText()) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .cannotOpen(path: path, why: "not a regular file") }
        var configuration = Configuration()
        configuration.readonly = true
        let outcome = try readingLog(path) {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            // One read transaction: a consistent snapshot even while a writer appends.
            return try queue.read { db in
                if try Schema.check(db, path: path) { throw AuditError.notAnAuditLog(path: path, why: "it has no tables") }
                return try walk(db, key: publicKey)
            }
        }
        if strict, case .intact(let summary) = outcome, summary.unsignedEntries > 0 {
            return .broken(AuditFinding(place: .entry(summary.signedSize), kind: .unsigned,
                                        detail: "\(summary.unsignedEntries) entries after the last signed head"))
        }
        return outcome
    }

    private static func walk(_ db: Database, key: AuditPublicKey) throws -> Outcome {
        let stored = try Row.fetchAll(db, sql: "SELECT seq, tree_size, root_hash, time, signature, frontier FROM heads ORDER BY seq")
        var heads = HeadChecker(stored.map(StoredHead.init), key: key)
        if let finding = heads.due() { return .broken(finding) }
        let rows = try Row.fetchCursor(db, sql: #"SELECT "index", time, kind, data, leaf_hash FROM entries ORDER BY "index""#)
        while let row = try rows.next() {
            let position = heads.frontier.size
            switch EntryCheck.check(row, position: position) {
            case .success(let checked):
                heads.frontier.append(checked.leafHash)
                if let finding = heads.due() { return .broken(finding) }
            case .failure(.finding(let finding)):
                return .broken(finding)
            case .failure(.misplaced(_, let claimed, let leafHash)):
                return .broken(try explain(db, rows, position: position, claimed: claimed, leafHash: leafHash))
            }
        }
        if let finding = heads.beyondEnd() { return .broken(finding) }
        return .intact(Summary(entries: heads.frontier.size, signedHeads: heads.checked, signedSize: heads.signedSize,
                               root: heads.frontier.root, signedRoot: heads.signedRoot))
    }

    /// A well-formed leaf stored at another position than its own index: tells a copy, an
    /// insertion, a move and a deletion apart as far as the rows allow.
    private static func explain(_ db: Database, _ rows: RowCursor, position: UInt64, claimed: UInt64,
                                leafHash: MerkleHash) throws -> AuditFinding {
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
        while let row = try rows.next() {
            guard case .blob(let data) = (row[3] as DatabaseValue).storage,
                  let header = try? AuditRecord.header(of: Array(data)), header.index == position else { continue }
            return AuditFinding(place: .entry(position), kind: .reordered,
                                detail: "holds the leaf of entry \(claimed), and its own leaf is stored at \(row[0] as DatabaseValue)")
        }
        return AuditFinding(place: .entry(position), kind: .deleted,
                            detail: "missing: the row in its place holds the leaf of entry \(claimed)")
    }

    /// Runs the read, turning SQLite's "not a database" into `.notAnAuditLog`.
    private static func readingLog<T>(_ path: String, _ body: () throws -> T) throws(AuditError) -> T {
        do {
            return try catchingSQL(path, body)
        } catch .database(_, let message) where message.contains("not a database") {
            throw .notAnAuditLog(path: path, why: "not a SQLite database")
        }
    }
}

/// The signed heads, checked against the tree as the entries build it.
private struct HeadChecker {
    let heads: [StoredHead]
    /// For each head, what is wrong with it on its own (nil if nothing).
    let problems: [AuditFinding?]
    var frontier = MerkleFrontier()
    var next = 0
    var checked = 0
    var signedSize: UInt64 = 0
    var signedRoot: MerkleHash?

    init(_ heads: [StoredHead], key: AuditPublicKey) {
        self.heads = heads
        var problems: [AuditFinding?] = []
        var previousSize: UInt64 = 0
        for (position, stored) in heads.enumerated() {
            let expected = UInt64(position)
            guard let head = stored.head else {
                problems.append(AuditFinding(place: stored.place, kind: .forgedHead, detail: stored.problem ?? "malformed"))
                continue
            }
            if head.sequence > expected {
                problems.append(AuditFinding(place: .head(sequence: expected, treeSize: nil), kind: .deleted,
                                             detail: "missing; the next stored head is \(head.sequence)"))
            } else if head.sequence < expected {
                problems.append(AuditFinding(place: stored.place, kind: .inserted, detail: "a second head with this sequence number"))
            } else if !head.isValid(for: key) {
                problems.append(AuditFinding(place: stored.place, kind: .forgedHead, detail: "its signature does not verify with key \(key)"))
            } else if head.treeSize < previousSize {
                problems.append(AuditFinding(place: stored.place, kind: .rewritten,
                                             detail: "it signs fewer entries than the head before it (\(previousSize)): history was rewritten"))
            } else {
                problems.append(nil)
            }
            previousSize = max(previousSize, head.treeSize)
        }
        self.problems = problems
    }

    /// Checks every head that signs the tree of `frontier.size` entries (or, when it has a
    /// problem of its own, any smaller tree). Heads are due in sequence order.
    mutating func due() -> AuditFinding? {
        while next < heads.count {
            let stored = heads[next]
            if let problem = problems[next] {
                if let head = stored.head, head.treeSize > frontier.size { return nil }
                return problem
            }
            let head = stored.head!
            guard head.treeSize <= frontier.size else { return nil }
            guard head.root == frontier.root else {
                return AuditFinding(place: .entry(signedSize), kind: .rewritten,
                                    detail: "the first \(head.treeSize) entries do not hash to the root signed by head \(head.sequence): an entry from \(signedSize) to \(head.treeSize - 1) was changed, added, removed or moved")
            }
            guard MerkleFrontier(size: head.treeSize, serialized: stored.frontier) == frontier else {
                return AuditFinding(place: stored.place, kind: .modified, detail: "its stored frontier does not match the entries")
            }
            signedSize = head.treeSize
            signedRoot = head.root
            checked += 1
            next += 1
        }
        return nil
    }

    /// After the last entry: a head that signs more entries than there are.
    func beyondEnd() -> AuditFinding? {
        guard next < heads.count else { return nil }
        if let problem = problems[next] { return problem }
        let head = heads[next].head!
        return AuditFinding(place: .entry(frontier.size), kind: .deleted,
                            detail: "missing: head \(head.sequence) signed \(head.treeSize) entries, only \(frontier.size) remain")
    }
}
