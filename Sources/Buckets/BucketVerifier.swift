import Audit
import Foundation
import GRDB
import Merkle
import SignedLog

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
        try catchingSQL(path) {
            let queue = try BucketSchema.file.openReader(path: path)
            defer { try? queue.close() }
            // One read transaction: a consistent snapshot even while a writer puts.
            return try queue.read { db in
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
            if let finding = try check(namespace, strict: strict) { return .broken(BucketFinding(finding, namespace: namespace)) }
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
    private mutating func check(_ namespace: String, strict: Bool) throws -> LogFinding? {
        func at(_ index: UInt64, _ kind: LogFinding.Kind, _ detail: String) -> LogFinding {
            LogFinding(place: .entry(index), kind: kind, detail: detail)
        }
        let rows = BucketSchema.rows(namespace)
        let walked = try LogWalk.run(db, rows: rows, key: key, make: BucketSchema.makeHead(namespace)) { row, position in
            let index = row[0] as DatabaseValue
            guard case .int64(let stored) = index.storage, stored >= 0 else { return .failure(at(position, .inserted, "a row whose index is \(index)")) }
            if UInt64(stored) > position { return .failure(at(position, .deleted, "missing; the next stored entry is \(stored)")) }
            let tags = try BucketSchema.tags(db, namespace: namespace, index: position)
            let entry: StoredEntry
            switch StoredEntry.read(row, namespace: namespace, tags: tags) {
            case .failure(let why): return .failure(at(position, .modified, "\(why)"))
            case .success(let read): entry = read
            }
            if entry.entry.leafHash != entry.storedLeafHash { return .failure(try explain(entry, rest: rows.entries(db, from: position + 1))) }
            if let problem = try checkValue(entry.entry) { return .failure(at(position, problem.kind, problem.detail)) }
            return .success(entry.storedLeafHash)
        }
        let walk: LogWalk.Summary
        switch walked {
        case .failure(let finding): return finding
        case .success(let summary): walk = summary
        }
        let strayTags = try Int64.fetchOne(db, sql: #"SELECT min("index") FROM tags WHERE namespace = ? AND ("index" >= ? OR "index" < 0)"#,
                                          arguments: [namespace, Int64(walk.entries)])
        if let stray = strayTags {
            return at(walk.entries, .inserted, "a tag for entry \(stray), which does not exist")
        }
        summary.entries += walk.entries
        summary.signedHeads += walk.signedHeads
        summary.unsignedEntries += walk.unsignedEntries
        return strict ? walk.unsignedFinding : nil
    }

    /// The value an entry names: present, of its size, hashing to its content address.
    private mutating func checkValue(_ entry: BucketEntry) throws -> (kind: LogFinding.Kind, detail: String)? {
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
    private func explain(_ bad: StoredEntry, rest: RowCursor) throws -> LogFinding {
        let position = bad.entry.index
        let namespace = bad.entry.namespace
        func at(_ index: UInt64, _ kind: LogFinding.Kind, _ detail: String) -> LogFinding {
            LogFinding(place: .entry(index), kind: kind, detail: detail)
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
        while let row = try rest.next() {
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
