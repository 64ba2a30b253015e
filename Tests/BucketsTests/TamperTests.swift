import Audit
import Buckets
import Foundation
import GRDB
import Merkle
import Testing

/// Each test changes a closed store (20 entries in cases/1/findings with heads at 4, 8, 12, 16,
/// 20; three in intel) through raw SQL, as someone with write access to the file could, and
/// checks that verify names the right place.
@Suite struct TamperTests {
    let ns = "cases/1/findings"

    /// Moves the rows of `table` in the namespace with index ≥ `from` by `by` (two steps, so the
    /// primary key never collides).
    func shift(_ table: String, from: Int, by: Int) -> String {
        """
        UPDATE \(table) SET "index" = "index" + 1000000 WHERE namespace = '\(ns)' AND "index" >= \(from);
        UPDATE \(table) SET "index" = "index" - 1000000 + (\(by)) WHERE namespace = '\(ns)' AND "index" >= 1000000;
        """
    }

    @Test func anIntactStoreVerifies() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db)
        let outcome = try BucketVerifier.verify(path: scratch.db, publicKey: key, strict: true)
        #expect(outcome == .intact(BucketVerifier.Summary(namespaces: 2, entries: 23, values: 23, signedHeads: 6, unsignedEntries: 0)))
    }

    @Test func modifiedValueBytes() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db)
        try tamper(scratch.db, "UPDATE blobs SET data = ? WHERE data = ?", [Data("valuE 5".utf8), Data("value 5".utf8)])
        let found = try #require(try finding(scratch.db, key: key))
        #expect(found.place == entryPlace(ns, 5))
        #expect(found.kind == .valueModified)
        // A reader refuses the value too.
        let store = try BucketStore(path: scratch.db, options: BucketStore.Options(readOnly: true))
        let entry = try #require(try store.entry(namespace: ns, index: 5))
        #expect(throws: BucketError.self) { try store.value(of: entry) }
        try store.close()
    }

    @Test func modifiedValueInTheSecondNamespace() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db)
        try tamper(scratch.db, "UPDATE blobs SET data = x'010001' WHERE data = x'0100ff'")
        let found = try #require(try finding(scratch.db, key: key))
        #expect(found.place == entryPlace("intel", 1))
        #expect(found.kind == .valueModified)
    }

    @Test func modifiedKeyTagOrTime() throws {
        let cases: [(String, UInt64)] = [
            (#"UPDATE entries SET key = 'finding/x' WHERE namespace = 'cases/1/findings' AND "index" = 9"#, 9),
            (#"UPDATE tags SET tag = 'even' WHERE namespace = 'cases/1/findings' AND "index" = 3 AND tag = 'odd'"#, 3),
            (#"INSERT INTO tags VALUES ('cases/1/findings', 'extra', 14)"#, 14),
            (#"UPDATE entries SET time = time + 1 WHERE namespace = 'cases/1/findings' AND "index" = 15"#, 15),
            (#"UPDATE entries SET size = 8 WHERE namespace = 'cases/1/findings' AND "index" = 2"#, 2),
        ]
        for (sql, index) in cases {
            let scratch = try Scratch()
            let key = try makeStore(scratch.db)
            try tamper(scratch.db, sql)
            let found = try #require(try finding(scratch.db, key: key), "\(sql)")
            #expect(found.place == entryPlace(ns, index), "\(sql)")
            #expect(found.kind == .modified, "\(sql)")
        }
    }

    @Test func aDeletedRow() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db)
        try tamper(scratch.db, #"DELETE FROM entries WHERE namespace = 'cases/1/findings' AND "index" = 13"#)
        let found = try #require(try finding(scratch.db, key: key))
        #expect(found.place == entryPlace(ns, 13))
        #expect(found.kind == .deleted)
    }

    @Test func aDeletedRowWithTheRestMovedDown() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db)
        try tamper(scratch.db, #"""
            DELETE FROM entries WHERE namespace = 'cases/1/findings' AND "index" = 10;
            DELETE FROM tags WHERE namespace = 'cases/1/findings' AND "index" = 10;
            """# + shift("entries", from: 11, by: -1) + shift("tags", from: 11, by: -1))
        let found = try #require(try finding(scratch.db, key: key))
        #expect(found.place == entryPlace(ns, 10))
        #expect(found.kind == .deleted)
    }

    @Test func anInsertedRowWithTheRestMovedUp() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db)
        // A well-formed entry at 10 whose leaf hash fits its fields, naming a stored value.
        let forged = BucketEntry(namespace: ns, index: 10, key: "forged", contentHash: BucketEntry.contentHash(of: Array("value 3".utf8)),
                                 size: 7, tags: [], time: 1_700_000_000_010_500_000)
        try tamper(scratch.db, shift("entries", from: 10, by: 1) + shift("tags", from: 10, by: 1) + #"""
            INSERT INTO entries (namespace, "index", key, content_hash, size, time, leaf_hash) VALUES (?, 10, 'forged', ?, 7, ?, ?)
            """#, [ns, Data(forged.contentHash.bytes), Int64(forged.time), Data(forged.leafHash.bytes)])
        let found = try #require(try finding(scratch.db, key: key))
        #expect(found.place == entryPlace(ns, 10))
        #expect(found.kind == .inserted)
    }

    @Test func twoRowsSwapped() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db)
        var sql = ""
        for table in ["entries", "tags"] {
            sql += """
                UPDATE \(table) SET "index" = 1000006 WHERE namespace = '\(ns)' AND "index" = 6;
                UPDATE \(table) SET "index" = 6 WHERE namespace = '\(ns)' AND "index" = 9;
                UPDATE \(table) SET "index" = 9 WHERE namespace = '\(ns)' AND "index" = 1000006;
                """
        }
        try tamper(scratch.db, sql)
        let found = try #require(try finding(scratch.db, key: key))
        #expect(found.place == entryPlace(ns, 6))
        #expect(found.kind == .reordered)
    }

    @Test func aConsistentRewriteIsCaughtByTheSignedRoot() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db)
        let store = try BucketStore(path: scratch.db, options: BucketStore.Options(readOnly: true))
        var entry = try #require(try store.entry(namespace: ns, index: 9))
        try store.close()
        entry.key = "finding/rewritten"
        try tamper(scratch.db, #"UPDATE entries SET key = ?, leaf_hash = ? WHERE namespace = ? AND "index" = 9"#,
                   [entry.key, Data(entry.leafHash.bytes), ns])
        let found = try #require(try finding(scratch.db, key: key))
        // Heads sign 8 and 12: the entry is somewhere from 8 to 11.
        #expect(found.place == entryPlace(ns, 8))
        #expect(found.kind == .rewritten)
    }

    @Test func aForgedHead() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db)
        try tamper(scratch.db, "UPDATE heads SET signature = zeroblob(64) WHERE namespace = ? AND seq = 2", [ns])
        let found = try #require(try finding(scratch.db, key: key))
        #expect(found.place == .head(namespace: ns, sequence: 2, treeSize: 12))
        #expect(found.kind == .forgedHead)
    }

    @Test func aDeletedValue() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db)
        try tamper(scratch.db, "DELETE FROM blobs WHERE data = ?", [Data("value 17".utf8)])
        let found = try #require(try finding(scratch.db, key: key))
        #expect(found.place == entryPlace(ns, 17))
        #expect(found.kind == .deleted)
    }

    @Test func anInsertedValue() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db)
        let junk = Array("junk".utf8)
        let hash = BucketEntry.contentHash(of: junk)
        try tamper(scratch.db, "INSERT INTO blobs VALUES (?, 4, ?)", [Data(hash.bytes), Data(junk)])
        let found = try #require(try finding(scratch.db, key: key))
        #expect(found.place == .blob(hash))
        #expect(found.kind == .inserted)
    }

    @Test func theTailCutOff() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db)
        try tamper(scratch.db, #"""
            DELETE FROM entries WHERE namespace = 'cases/1/findings' AND "index" >= 18;
            DELETE FROM tags WHERE namespace = 'cases/1/findings' AND "index" >= 18;
            """#)
        let found = try #require(try finding(scratch.db, key: key))
        #expect(found.place == entryPlace(ns, 18))
        #expect(found.kind == .deleted)
    }

    @Test func unsignedEntriesAreAFindingOnlyWhenStrict() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db)
        let hash = BucketEntry.contentHash(of: Array("value 3".utf8))
        let extra = BucketEntry(namespace: "intel", index: 3, key: "late", contentHash: hash, size: 7, tags: [], time: 5)
        try tamper(scratch.db, #"INSERT INTO entries VALUES ('intel', 3, 'late', ?, 7, 5, ?)"#, [Data(hash.bytes), Data(extra.leafHash.bytes)])
        guard case .intact(let summary) = try BucketVerifier.verify(path: scratch.db, publicKey: key) else {
            Issue.record("an unsigned tail failed verify")
            return
        }
        #expect(summary.unsignedEntries == 1)
        let found = try #require(try finding(scratch.db, key: key, strict: true))
        #expect(found.place == entryPlace("intel", 3))
        #expect(found.kind == .unsigned)
    }

    @Test func anotherKeyDoesNotVerify() throws {
        let scratch = try Scratch()
        try makeStore(scratch.db)
        let stranger = try #require(AuditPublicKey(rawRepresentation: Array(repeating: 9, count: 32)))
        let found = try #require(try finding(scratch.db, key: stranger))
        #expect(found.place == .head(namespace: ns, sequence: 0, treeSize: 4))
        #expect(found.kind == .forgedHead)
    }
}
