import GRDB
import Merkle

/// A verifier's pass over one tree: the entries in index order, each checked by the log type
/// (its leaf hash, or what is wrong with it), the root recomputed at every signed head's size
/// and each head's signature, sequence and size checked. The first problem ends it.
public enum LogWalk {
    /// What an intact tree holds (`AuditVerifier.Summary`).
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

        /// The finding `--strict` makes of unsigned entries.
        package var unsignedFinding: LogFinding? {
            guard unsignedEntries > 0 else { return nil }
            return LogFinding(place: .entry(signedSize), kind: .unsigned, detail: "\(unsignedEntries) entries after the last signed head")
        }
    }

    /// One entries row (`rows.entryColumns`) expected at a position: its leaf hash, or a finding.
    package typealias Check = (_ row: Row, _ position: UInt64) throws -> Result<MerkleHash, LogFinding>

    package static func run<Head: SignedHead>(_ db: Database, rows: LogRows, key: some HeadKey, make: MakeHead<Head>,
                                  check: Check) throws -> Result<Summary, LogFinding> {
        var heads = HeadChecker(try rows.heads(db, make: make), key: key)
        if let finding = heads.due() { return .failure(finding) }
        let cursor = try rows.entries(db)
        while let row = try cursor.next() {
            switch try check(row, heads.frontier.size) {
            case .failure(let finding): return .failure(finding)
            case .success(let leafHash): heads.frontier.append(leafHash)
            }
            if let finding = heads.due() { return .failure(finding) }
        }
        if let finding = heads.beyondEnd() { return .failure(finding) }
        return .success(Summary(entries: heads.frontier.size, signedHeads: heads.checked, signedSize: heads.signedSize,
                                root: heads.frontier.root, signedRoot: heads.signedRoot))
    }
}

/// The signed heads of a tree, checked against it as the entries build it.
private struct HeadChecker<Head: SignedHead> {
    let heads: [StoredHead<Head>]
    /// For each head, what is wrong with it on its own (nil if nothing).
    let problems: [LogFinding?]
    var frontier = MerkleFrontier()
    var next = 0
    var checked = 0
    var signedSize: UInt64 = 0
    var signedRoot: MerkleHash?

    init(_ heads: [StoredHead<Head>], key: some HeadKey) {
        self.heads = heads
        var previousSize: UInt64 = 0
        problems = heads.enumerated().map { position, stored in
            let expected = UInt64(position)
            let head: Head
            switch stored.checked() {
            case .failure(let finding): return finding
            case .success(let checked): head = checked
            }
            defer { previousSize = max(previousSize, head.treeSize) }
            if head.sequence > expected {
                return LogFinding(place: .head(sequence: expected, treeSize: nil), kind: .deleted,
                                  detail: "missing; the next stored head is \(head.sequence)")
            }
            if head.sequence < expected {
                return LogFinding(place: stored.place, kind: .inserted, detail: "a second head with this sequence number")
            }
            if !head.isValid(for: key) {
                return LogFinding(place: stored.place, kind: .forgedHead, detail: "its signature does not verify with key \(key)")
            }
            if head.treeSize < previousSize {
                return LogFinding(place: stored.place, kind: .rewritten,
                                  detail: "it signs fewer entries than the head before it (\(previousSize)): history was rewritten")
            }
            return nil
        }
    }

    /// Checks every head that signs the tree of `frontier.size` entries (or, when it has a
    /// problem of its own, any smaller tree). Heads are due in sequence order.
    mutating func due() -> LogFinding? {
        while next < heads.count {
            let stored = heads[next]
            if let problem = problems[next] {
                if let head = stored.head, head.treeSize > frontier.size { return nil }
                return problem
            }
            let head = stored.head!
            guard head.treeSize <= frontier.size else { return nil }
            guard head.root == frontier.root else {
                return LogFinding(place: .entry(signedSize), kind: .rewritten,
                                  detail: "the first \(head.treeSize) entries do not hash to the root signed by head \(head.sequence): an entry from \(signedSize) to \(head.treeSize - 1) was changed, added, removed or moved")
            }
            guard MerkleFrontier(size: head.treeSize, serialized: stored.frontier) == frontier else {
                return LogFinding(place: stored.place, kind: .modified, detail: "its stored frontier does not match the entries")
            }
            signedSize = head.treeSize
            signedRoot = head.root
            checked += 1
            next += 1
        }
        return nil
    }

    /// After the last entry: a head that signs more entries than there are.
    func beyondEnd() -> LogFinding? {
        guard next < heads.count else { return nil }
        if let problem = problems[next] { return problem }
        let head = heads[next].head!
        return LogFinding(place: .entry(frontier.size), kind: .deleted,
                          detail: "missing: head \(head.sequence) signed \(head.treeSize) entries, only \(frontier.size) remain")
    }
}
