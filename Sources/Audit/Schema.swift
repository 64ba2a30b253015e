import Foundation
import SignedLog

/// The tables of an audit log (docs/audit.md, "Format").
enum Schema {
    /// Both tables only grow. The triggers are a second guard behind the API (which has no
    /// update or delete): rows can be neither changed nor removed, nor inserted anywhere but
    /// at the end, not even by INSERT OR REPLACE (whose implicit delete fires no trigger).
    static let create = """
        CREATE TABLE log (
            id BLOB NOT NULL CHECK (length(id) = 16)
        );
        CREATE TRIGGER log_one_identity BEFORE INSERT ON log
            WHEN (SELECT count(*) FROM log) > 0
            BEGIN SELECT RAISE(ABORT, 'an audit log has one identity, fixed when it is created'); END;
        CREATE TRIGGER log_no_update BEFORE UPDATE ON log
            BEGIN SELECT RAISE(ABORT, 'an audit log has one identity, fixed when it is created: no update'); END;
        CREATE TRIGGER log_no_delete BEFORE DELETE ON log
            BEGIN SELECT RAISE(ABORT, 'an audit log has one identity, fixed when it is created: no delete'); END;
        CREATE TABLE entries (
            "index" INTEGER PRIMARY KEY CHECK ("index" >= 0),
            time INTEGER NOT NULL,
            kind TEXT NOT NULL,
            data BLOB NOT NULL,
            leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32)
        );
        CREATE TABLE heads (
            seq INTEGER PRIMARY KEY CHECK (seq >= 0),
            tree_size INTEGER NOT NULL CHECK (tree_size >= 0),
            root_hash BLOB NOT NULL CHECK (length(root_hash) = 32),
            time INTEGER NOT NULL,
            signature BLOB NOT NULL CHECK (length(signature) = 64),
            frontier BLOB NOT NULL
        );
        CREATE TRIGGER entries_append_only BEFORE INSERT ON entries
            WHEN NEW."index" IS NOT (SELECT coalesce(max("index"), -1) + 1 FROM entries)
            BEGIN SELECT RAISE(ABORT, 'audit entries are append-only: the next index is the only one allowed'); END;
        CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
            BEGIN SELECT RAISE(ABORT, 'audit entries are append-only: no update'); END;
        CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
            BEGIN SELECT RAISE(ABORT, 'audit entries are append-only: no delete'); END;
        CREATE TRIGGER heads_append_only BEFORE INSERT ON heads
            WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), -1) + 1 FROM heads)
              OR NEW.tree_size < (SELECT coalesce(max(tree_size), 0) FROM heads)
              OR NEW.tree_size > (SELECT coalesce(max("index"), -1) + 1 FROM entries)
            BEGIN SELECT RAISE(ABORT, 'audit heads are append-only: the next sequence number, for a tree no smaller'); END;
        CREATE TRIGGER heads_no_update BEFORE UPDATE ON heads
            BEGIN SELECT RAISE(ABORT, 'audit heads are append-only: no update'); END;
        CREATE TRIGGER heads_no_delete BEFORE DELETE ON heads
            BEGIN SELECT RAISE(ABORT, 'audit heads are append-only: no delete'); END;
        """

    static let insertEntry = #"INSERT INTO entries ("index", time, kind, data, leaf_hash) VALUES (?, ?, ?, ?, ?)"#

    /// PRAGMA application_id "MoAL" tells an audit log from another SQLite file; user_version is
    /// the schema and leaf encoding version. Version 2 added the log's identity (the `log` table,
    /// signed into every head); a version 1 log is refused by its version, not migrated.
    /// A new log gets its identity in the transaction that makes its tables.
    static let file = LogSchema(applicationID: 0x4D6F_414C, version: 2, tables: ["log", "entries", "heads"], create: create) { db in
        try db.execute(sql: "INSERT INTO log (id) VALUES (?)", arguments: [Data(LogID.random().bytes)])
    }
    /// The one tree of a log: every row of both tables.
    static let rows = LogRows(entryColumns: #""index", time, kind, data, leaf_hash"#)
}
