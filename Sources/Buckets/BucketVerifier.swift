import Audit
import Foundation
import GRDB
import Glibc
import Merkle

/// Checks a whole store offline, with the file and the public key: per namespace, indices
/// contiguous from 0, every leaf hash recomputed from the entry's fields and tags, every value's
/// bytes against its content hash and size, the root at every signed head and each head's
/// signature; then that no tag or value is left over. Reports the first problem, namespaces in
/// byte order (docs/buckets.md, "What verify checks").
public enum BucketVerifier {
    public struct Summary: Equatable, Sendable {
        public var namespaces: Int
        public var entries: UInt64
        public var values: Int
        public var signedHeads: Int
        /// Entries after the last signed head of their namespace.
        public var unsignedEntries: UInt64

        public init(namespaces: Int, entries: UInt64, values: Int, signedHeads: Int, unsignedEntries: UInt64) {
            self.namespaces = namespaces
            self.entries = entries
            self.values = values
            self.signedHeads = signedHeads
            self.unsignedEntries = unsignedEntries
        }
    }

    public enum Outcome: Equatable, Sendable {
        case intact(Summary)
        case broken(BucketFinding)
    }

    /// Where the public key is kept when the writer used its default key (`<db>.key`).
    public static func defaultPublicKeyPath(forStore path: String) -> String {
        AuditKey.publicKeyPath(forKey: path + ".key")
    }

    /// Throws for what is not a readable bucket store; a readable store that is wrong is `.broken`.
    /// With `strict`, entries after the last signed head are a finding.
    public static func verify(path: String, publicKey: AuditPublicKey, strict: Bool = false) throws(BucketError) -> Outcome {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .cannotOpen(path: path, why: String(cString: strerror(errno))) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .cannotOpen(path: path, why: "not a regular file") }
        var configuration = Configuration()
        configuration.readonly = true
        return try catchingSQL(path) {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            // One read transaction: a consistent snapshot even while a writer puts.
            return try queue.read { db in
                if try BucketSchema.check(db, path: path) { throw BucketError.notABucketStore(path: path, why: "it has no tables") }
                var walk = Walk(db: db, key: publicKey)
                return try walk.run(strict: strict)
            }
        }
    }
}

private struct Walk {
    let db: Database
    let key: AuditPublicKey
    var summary = BucketVerifier.Summary(namespaces: 0, entries: 0, values: 0, signedHeads: 0, unsignedEntries: 0)
    /// Content hashes whose value has been checked already (values are stored once, named often).
    var checkedValues: Set<MerkleHash> = []

    init(db: Database, key: AuditPublicKey) {
        self.db = db
        self.key = key
    }

    mutating func run(strict: Bool) throws -> BucketVerifier.Outcome {
        let names = try String.fetchAll(db, sql: """
            SELECT namespace FROM entries UNION SELECT namespace FROM heads UNION SELECT namespace FROM tags ORDER BY namespace
            """)
        for namespace in names {
            if let finding = try check(namespace, strict: strict) { return .broken(finding) }
            summary.namespaces += 1
        }
        if let orphan = try Data.fetchOne(db, sql: "SELECT hash FROM blobs WHERE hash NOT IN (SELECT content_hash FROM entries) LIMIT 1") {
            let place = MerkleHash(bytes: orphan).map(BucketFinding.Place.blob) ?? .blob(Merkle.emptyRoot)
            return .broken(BucketFinding(place: place, kind: .inserted, detail: "a stored value that no entry names"))
        }
        summary.values = try Int.fetchOne(db, sql: "SELECT count(*) FROM blobs") ?? 0
        return .intact(summary)
    }

    /// The first problem in one namespace, or nil.
    private mutating func check(_ namespace: String, strict: Bool) throws -> BucketFinding? {
        func at(_ index: UInt64, _ kind: BucketFinding.Kind, _ detail: String) -> BucketFinding {
            BucketFinding(place: .entry(namespace: namespace, index: index), kind: kind, detail: detail)
        }
        let storedHeads = try Row.fetchAll(db, sql: "SELECT \(BucketSchema.headColumns) FROM heads WHERE namespace = ? ORDER BY seq",
                                           arguments: [namespace])
        var heads = Heads(storedHeads.enumerated().map { StoredHead($1, namespace: namespace, position: UInt64($0)) },
                          namespace: namespace, key: key)
        if let finding = heads.due() { return finding }
        let rows = try Row.fetchAll(db, sql: #"SELECT \#(BucketSchema.entryColumns) FROM entries WHERE namespace = ? ORDER BY "index""#,
                                    arguments: [namespace])
        for (offset, row) in rows.enumerated() {
            let position = heads.frontier.size
            let index = row[0] as DatabaseValue
            guard case .int64(let stored) = index.storage, stored >= 0 else { return at(position, .inserted, "a row whose index is \(index)") }
            if UInt64(stored) > position { return at(position, .deleted, "missing; the next stored entry is \(stored)") }
            let tags = try BucketSchema.tags(db, namespace: namespace, index: position)
            let entry: StoredEntry
            switch StoredEntry.read(row, namespace: namespace, tags: tags) {
            case .failure(let why): return at(position, .modified, "\(why)")
            case .success(let read): entry = read
            }
            if entry.entry.leafHash != entry.storedLeafHash {
                return try explain(entry, rest: rows[(offset + 1)...], namespace: namespace)
            }
            if let problem = try checkValue(entry.entry) { return at(position, problem.kind, problem.detail) }
            heads.frontier.append(entry.storedLeafHash)
            summary.entries += 1
            if let finding = heads.due() { return finding }
        }
        let size = heads.frontier.size
        if let finding = heads.beyondEnd() { return finding }
        let strayTags = try Int64.fetchOne(db, sql: #"SELECT min("index") FROM tags WHERE namespace = ? AND ("index" >= ? OR "index" < 0)"#,
                                          arguments: [namespace, Int64(size)])
        if let stray = strayTags {
            return at(size, .inserted, "a tag for entry \(stray), which does not exist")
        }
        summary.signedHeads += heads.checked
        summary.unsignedEntries += size - heads.signedSize
        if strict && size > heads.signedSize {
            return at(heads.signedSize, .unsigned, "\(size - heads.signedSize) entries after the last signed head")
        }
        return nil
    }

    /// The value an entry names: present, of its size, hashing to its content address.
    private mutating func checkValue(_ entry: BucketEntry) throws -> (kind: BucketFinding.Kind, detail: String)? {
        guard !checkedValues.contains(entry.contentHash) else { return nil }
        guard let row = try Row.fetchOne(db, sql: "SELECT size, data FROM blobs WHERE hash = ?", arguments: [Data(entry.contentHash.bytes)]) else {
            return (.deleted, "its value \(entry.contentHash.hex) is missing")
        }
        guard case .blob(let data) = (row[1] as DatabaseValue).storage else { return (.valueModified, "its value is not a blob") }
        guard UInt64(data.count) == entry.size, row[0] as Int64? == Int64(data.count) else {
            return (.valueModified, "its value is \(data.count) bytes, the entry says \(entry.size)")
        }
        guard BucketEntry.contentHash(of: data) == entry.contentHash else {
            return (.valueModified, "its value's bytes do not hash to its content address \(entry.contentHash.hex)")
        }
        checkedValues.insert(entry.contentHash)
        return nil
    }

    /// An entry whose fields do not give its stored leaf hash: an insertion or deletion that
    /// shifted the rows by one, a swap with a later row, or a plain modification.
    private func explain(_ bad: StoredEntry, rest: ArraySlice<Row>, namespace: String) throws -> BucketFinding {
        let position = bad.entry.index
        func at(_ index: UInt64, _ kind: BucketFinding.Kind, _ detail: String) -> BucketFinding {
            BucketFinding(place: .entry(namespace: namespace, index: index), kind: kind, detail: detail)
        }
        func leaf(_ entry: BucketEntry, as index: UInt64) -> MerkleHash {
            var moved = entry
            moved.index = index
            return moved.leafHash
        }
        if position > 0, leaf(bad.entry, as: position - 1) == bad.storedLeafHash {
            return at(position - 1, .inserted, "the rows from here on moved up by one: entry \(position) holds the leaf of entry \(position - 1)")
        }
        if leaf(bad.entry, as: position + 1) == bad.storedLeafHash {
            return at(position, .deleted, "missing: the rows after it moved down by one")
        }
        for row in rest {
            guard case .int64(let other) = (row[0] as DatabaseValue).storage, other >= 0 else { continue }
            let tags = try BucketSchema.tags(db, namespace: namespace, index: UInt64(other))
            guard case .success(let later) = StoredEntry.read(row, namespace: namespace, tags: tags) else { continue }
            let moved = leaf(later.entry, as: position)
            if moved == bad.storedLeafHash || moved == later.storedLeafHash {
                return at(position, .reordered, "its fields are stored at entry \(other), and that entry's in its place")
            }
        }
        return at(position, .modified, "its key, content hash, size, tags or time do not match its leaf hash")
    }
}

/// A namespace's signed heads, checked against its tree as the entries build it.
private struct Heads {
    let heads: [StoredHead]
    let namespace: String
    /// What is wrong with each head on its own, if anything.
    let problems: [BucketFinding?]
    var frontier = MerkleFrontier()
    var next = 0
    var checked = 0
    var signedSize: UInt64 = 0

    init(_ heads: [StoredHead], namespace: String, key: AuditPublicKey) {
        self.heads = heads
        self.namespace = namespace
        var previousSize: UInt64 = 0
        problems = heads.enumerated().map { position, stored in
            let expected = UInt64(position)
            guard let head = stored.head else { return BucketFinding(place: stored.place, kind: .forgedHead, detail: stored.problem ?? "malformed") }
            defer { previousSize = max(previousSize, head.treeSize) }
            if head.sequence > expected {
                return BucketFinding(place: .head(namespace: namespace, sequence: expected, treeSize: nil), kind: .deleted,
                                     detail: "missing; the next stored head is \(head.sequence)")
            }
            if !head.isValid(for: key) {
                return BucketFinding(place: stored.place, kind: .forgedHead, detail: "its signature does not verify with key \(key)")
            }
            if head.treeSize < previousSize {
                return BucketFinding(place: stored.place, kind: .rewritten,
                                     detail: "it signs fewer entries than the head before it (\(previousSize)): history was rewritten")
            }
            return nil
        }
    }

    /// Checks every head due at the tree's current size (a head with a problem of its own is
    /// reported as soon as the tree reaches it, or at once if its size is unknown).
    mutating func due() -> BucketFinding? {
        while next < heads.count {
            let stored = heads[next]
            if let problem = problems[next] {
                if let head = stored.head, head.treeSize > frontier.size { return nil }
                return problem
            }
            let head = stored.head!
            guard head.treeSize <= frontier.size else { return nil }
            guard head.root == frontier.root else {
                return BucketFinding(place: .entry(namespace: namespace, index: signedSize), kind: .rewritten,
                                     detail: "the first \(head.treeSize) entries do not hash to the root signed by head \(head.sequence): an entry from \(signedSize) to \(head.treeSize - 1) was changed, added, removed or moved")
            }
            guard MerkleFrontier(size: head.treeSize, serialized: stored.frontier) == frontier else {
                return BucketFinding(place: stored.place, kind: .modified, detail: "its stored frontier does not match the entries")
            }
            signedSize = head.treeSize
            checked += 1
            next += 1
        }
        return nil
    }

    /// After the last entry: a head that signs more entries than there are.
    func beyondEnd() -> BucketFinding? {
        guard next < heads.count else { return nil }
        if let problem = problems[next] { return problem }
        let head = heads[next].head!
        return BucketFinding(place: .entry(namespace: namespace, index: frontier.size), kind: .deleted,
                             detail: "missing: head \(head.sequence) signed \(head.treeSize) entries, only \(frontier.size) remain")
    }
}
