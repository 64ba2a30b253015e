import Foundation
import GRDB
import Merkle
import SignedLog

/// The tables of a bucket store (docs/buckets.md, "Format").
enum BucketSchema {
    /// Every table only grows. The triggers guard behind the API (which has no update or
    /// delete): no row changes or goes, entries and heads are inserted only at the end of their
    /// namespace, tags only for the newest entry, and a value already stored is never replaced
    /// (a second insert of the same content hash is ignored, INSERT OR REPLACE included).
    static let create = """
        CREATE TABLE blobs (
            hash BLOB PRIMARY KEY CHECK (length(hash) = 32),
            size INTEGER NOT NULL CHECK (size >= 0),
            data BLOB NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE entries (
            namespace TEXT NOT NULL,
            "index" INTEGER NOT NULL CHECK ("index" >= 0),
            key TEXT NOT NULL,
            content_hash BLOB NOT NULL CHECK (length(content_hash) = 32),
            size INTEGER NOT NULL CHECK (size >= 0),
            time INTEGER NOT NULL,
            leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32),
            PRIMARY KEY (namespace, "index")
        ) WITHOUT ROWID;
        CREATE INDEX entries_by_key ON entries (namespace, key, "index");
        CREATE INDEX entries_by_time ON entries (namespace, time);
        CREATE TABLE tags (
            namespace TEXT NOT NULL,
            tag TEXT NOT NULL,
            "index" INTEGER NOT NULL,
            PRIMARY KEY (namespace, tag, "index")
        ) WITHOUT ROWID;
        CREATE INDEX tags_by_entry ON tags (namespace, "index");
        CREATE TABLE heads (
            namespace TEXT NOT NULL,
            seq INTEGER NOT NULL CHECK (seq >= 0),
            tree_size INTEGER NOT NULL CHECK (tree_size >= 0),
            root_hash BLOB NOT NULL CHECK (length(root_hash) = 32),
            time INTEGER NOT NULL,
            signature BLOB NOT NULL CHECK (length(signature) = 64),
            frontier BLOB NOT NULL,
            PRIMARY KEY (namespace, seq)
        ) WITHOUT ROWID;
        CREATE TRIGGER blobs_once BEFORE INSERT ON blobs
            WHEN EXISTS (SELECT 1 FROM blobs WHERE hash = NEW.hash)
            BEGIN SELECT RAISE(IGNORE); END;
        CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs
            BEGIN SELECT RAISE(ABORT, 'bucket values are append-only: no update'); END;
        CREATE TRIGGER blobs_no_delete BEFORE DELETE ON blobs
            BEGIN SELECT RAISE(ABORT, 'bucket values are append-only: no delete'); END;
        CREATE TRIGGER entries_append_only BEFORE INSERT ON entries
            WHEN NEW."index" IS NOT (SELECT coalesce(max("index"), -1) + 1 FROM entries WHERE namespace = NEW.namespace)
            BEGIN SELECT RAISE(ABORT, 'bucket entries are append-only: the next index of the namespace is the only one allowed'); END;
        CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
            BEGIN SELECT RAISE(ABORT, 'bucket entries are append-only: no update'); END;
        CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
            BEGIN SELECT RAISE(ABORT, 'bucket entries are append-only: no delete'); END;
        CREATE TRIGGER tags_append_only BEFORE INSERT ON tags
            WHEN NEW."index" IS NOT (SELECT max("index") FROM entries WHERE namespace = NEW.namespace)
            BEGIN SELECT RAISE(ABORT, 'bucket tags are append-only: only the newest entry of a namespace takes tags'); END;
        CREATE TRIGGER tags_no_update BEFORE UPDATE ON tags
            BEGIN SELECT RAISE(ABORT, 'bucket tags are append-only: no update'); END;
        CREATE TRIGGER tags_no_delete BEFORE DELETE ON tags
            BEGIN SELECT RAISE(ABORT, 'bucket tags are append-only: no delete'); END;
        CREATE TRIGGER heads_append_only BEFORE INSERT ON heads
            WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), -1) + 1 FROM heads WHERE namespace = NEW.namespace)
              OR NEW.tree_size < (SELECT coalesce(max(tree_size), 0) FROM heads WHERE namespace = NEW.namespace)
              OR NEW.tree_size > (SELECT coalesce(max("index"), -1) + 1 FROM entries WHERE namespace = NEW.namespace)
            BEGIN SELECT RAISE(ABORT, 'bucket heads are append-only: the next sequence number, for a tree no smaller'); END;
        CREATE TRIGGER heads_no_update BEFORE UPDATE ON heads
            BEGIN SELECT RAISE(ABORT, 'bucket heads are append-only: no update'); END;
        CREATE TRIGGER heads_no_delete BEFORE DELETE ON heads
            BEGIN SELECT RAISE(ABORT, 'bucket heads are append-only: no delete'); END;
        """

    static let insertBlob = "INSERT INTO blobs (hash, size, data) VALUES (?, ?, ?)"
    static let insertEntry = #"INSERT INTO entries (namespace, "index", key, content_hash, size, time, leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?)"#
    static let insertTag = #"INSERT INTO tags (namespace, tag, "index") VALUES (?, ?, ?)"#
    static let entryColumns = #""index", key, content_hash, size, time, leaf_hash"#

    /// PRAGMA application_id "MoBK".
    static let file = LogSchema(applicationID: 0x4D6F_424B, version: 1, tables: ["blobs", "entries", "tags", "heads"], create: create)

    /// The tree of one namespace.
    static func rows(_ namespace: String) -> LogRows { LogRows(entryColumns: entryColumns, scope: ("namespace", namespace)) }

    static func makeHead(_ namespace: String) -> MakeHead<BucketHead> {
        { BucketHead(namespace: namespace, sequence: $0, treeSize: $1, root: $2, time: $3, signature: $4) }
    }

    /// The tags stored for one entry, sorted by bytes (SQLite's BINARY order is memcmp).
    static func tags(_ db: Database, namespace: String, index: UInt64) throws -> [String] {
        try String.fetchAll(db.cachedStatement(sql: #"SELECT tag FROM tags WHERE namespace = ? AND "index" = ? ORDER BY tag"#),
                            arguments: [namespace, Int64(index)])
    }
}

/// Why a stored row could not be read as what it should be.
struct Malformed: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// An entries row (columns `entryColumns`) read without trusting it.
struct StoredEntry {
    var entry: BucketEntry
    var storedLeafHash: MerkleHash

    /// A failure, with the reason, when a column has the wrong type or length.
    static func read(_ row: Row, namespace: String, tags: [String]) -> Result<StoredEntry, Malformed> {
        let values = (0..<6).map { row[$0] as DatabaseValue }
        guard case .int64(let index) = values[0].storage, index >= 0 else { return .failure(Malformed("its index is \(values[0])")) }
        guard case .string(let key) = values[1].storage else { return .failure(Malformed("its key is not text")) }
        guard case .blob(let content) = values[2].storage, let contentHash = MerkleHash(bytes: content) else {
            return .failure(Malformed("its content hash is not 32 bytes"))
        }
        guard case .int64(let size) = values[3].storage, size >= 0 else { return .failure(Malformed("its size is \(values[3])")) }
        guard case .int64(let time) = values[4].storage else { return .failure(Malformed("its time is \(values[4])")) }
        guard case .blob(let leaf) = values[5].storage, let leafHash = MerkleHash(bytes: leaf) else {
            return .failure(Malformed("its leaf hash is not 32 bytes"))
        }
        let entry = BucketEntry(namespace: namespace, index: UInt64(index), key: key, contentHash: contentHash,
                                size: UInt64(size), tags: tags, time: UInt64(bitPattern: time))
        return .success(StoredEntry(entry: entry, storedLeafHash: leafHash))
    }
}
