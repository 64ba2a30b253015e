import Audit
import Buckets
import Foundation
import GRDB
import Glibc
import Merkle
import Testing

@Suite struct BucketStoreTests {
    @Test func putThenGetReturnsTheNewestVersion() throws {
        let scratch = try Scratch()
        let store = try openStore(scratch.db)
        let first = try store.put(namespace: "agents/a", key: "report", value: Array("draft".utf8), tags: ["wip"])
        let second = try store.put(namespace: "agents/a", key: "report", value: Array("final".utf8), tags: ["done"])
        #expect(first.index == 0)
        #expect(second.index == 1)
        #expect(second.time > first.time)
        let got = try #require(try store.get(namespace: "agents/a", key: "report"))
        #expect(got.value == Array("final".utf8))
        #expect(got.entry == second)
        #expect(try store.get(namespace: "agents/a", key: "nothing") == nil)
        #expect(try store.get(namespace: "agents/b", key: "report") == nil)
        #expect(try store.entry(namespace: "agents/a", index: 0) == first)
        #expect(try store.value(of: first) == Array("draft".utf8))
        try store.close()
    }

    @Test func binaryAndEmptyValuesRoundTrip() throws {
        let scratch = try Scratch()
        let store = try openStore(scratch.db)
        let binary = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        try store.put(namespace: "n", key: "bin", value: binary)
        try store.put(namespace: "n", key: "empty", value: [])
        #expect(try store.get(namespace: "n", key: "bin")?.value == binary)
        let empty = try #require(try store.get(namespace: "n", key: "empty"))
        #expect(empty.value.isEmpty)
        #expect(empty.entry.size == 0)
        #expect(empty.entry.contentHash.hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        try store.close()
    }

    @Test func equalValuesAreStoredOnce() throws {
        let scratch = try Scratch()
        let store = try openStore(scratch.db)
        let a = try store.put(namespace: "n", key: "a", value: Array("same bytes".utf8))
        let b = try store.put(namespace: "m", key: "b", value: Array("same bytes".utf8))
        try store.put(namespace: "n", key: "c", value: Array("other".utf8))
        #expect(a.contentHash == b.contentHash)
        #expect(a.contentHash == BucketEntry.contentHash(of: Array("same bytes".utf8)))
        try store.close()
        let queue = try DatabaseQueue(path: scratch.db)
        #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM blobs") } == 2)
        try queue.close()
    }

    @Test func namespacesHaveTheirOwnIndicesAndTrees() throws {
        let scratch = try Scratch()
        let store = try openStore(scratch.db, signEvery: 100)
        #expect(try store.put(namespace: "x", key: "k", value: [1]).index == 0)
        #expect(try store.put(namespace: "y", key: "k", value: [1]).index == 0)
        #expect(try store.put(namespace: "x", key: "k", value: [2]).index == 1)
        #expect(try store.namespaces() == ["x", "y"])
        let heads = try store.signHeads()
        #expect(heads.map(\.namespace) == ["x", "y"])
        #expect(heads.map(\.treeSize) == [2, 1])
        #expect(try store.signHeads().isEmpty)
        try store.close()
    }

    @Test func queryFiltersCombineInIndexOrder() throws {
        let scratch = try Scratch()
        let store = try openStore(scratch.db)
        let start: UInt64 = 1_700_000_000_000_000_000
        // Entry n has time start + (n + 1) ms.
        let puts: [(String, [String])] = [
            ("logs/a", ["x"]), ("logs/b", ["y"]), ("notes/a", ["x", "y"]), ("logs/a", ["y"]), ("logs/c", []), ("logsbook", ["x"]),
        ]
        for (n, put) in puts.enumerated() { try store.put(namespace: "q", key: put.0, value: [UInt8(n)], tags: put.1) }
        func indices(_ query: BucketQuery) throws -> [UInt64] { try store.query(query).map(\.index) }
        #expect(try indices(BucketQuery(namespace: "q")) == [0, 1, 2, 3, 4, 5])
        #expect(try indices(BucketQuery(namespace: "q", keyPrefix: "logs/")) == [0, 1, 3, 4])
        #expect(try indices(BucketQuery(namespace: "q", tags: ["x"])) == [0, 2, 5])
        #expect(try indices(BucketQuery(namespace: "q", tags: ["x", "y"])) == [2])
        #expect(try indices(BucketQuery(namespace: "q", since: start + 2_000_000, until: start + 5_000_000)) == [1, 2, 3])
        #expect(try indices(BucketQuery(namespace: "q", keyPrefix: "logs", tags: ["x"], since: start + 2_000_000)) == [5])
        #expect(try indices(BucketQuery(namespace: "q", latestOnly: true)) == [1, 2, 3, 4, 5])
        // The newest version of logs/a has tag y, so with latestOnly no version of it has x.
        #expect(try indices(BucketQuery(namespace: "q", keyPrefix: "logs/a", tags: ["x"], latestOnly: true)) == [])
        #expect(try indices(BucketQuery(namespace: "q", keyPrefix: "logs/", limit: 2)) == [0, 1])
        #expect(try indices(BucketQuery(namespace: "other")) == [])
        #expect(try store.query(BucketQuery(namespace: "q", tags: ["y"])).map(\.key) == ["logs/b", "notes/a", "logs/a"])
        #expect(throws: BucketError.invalid("limit -1 is negative")) { try store.query(BucketQuery(namespace: "q", limit: -1)) }
        try store.close()
    }

    @Test func inclusionProofsVerifyAndMutationsFail() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db, count: 13, signEvery: 5)
        let store = try BucketStore(path: scratch.db, options: BucketStore.Options(readOnly: true))
        for n in 0..<13 {
            let entry = try #require(try store.entry(namespace: "cases/1/findings", index: UInt64(n)))
            let proof = try store.inclusionProof(for: entry)
            #expect(proof.head.treeSize == 13)
            try proof.verify(publicKey: key, value: Array("value \(n)".utf8))
        }
        let entry = try #require(try store.entry(namespace: "cases/1/findings", index: 6))
        let proof = try store.inclusionProof(for: entry)
        #expect(!proof.path.isEmpty)

        var badPath = proof
        var bytes = badPath.path[0].bytes
        bytes[0] ^= 1
        badPath.path[0] = try #require(MerkleHash(bytes: bytes))
        #expect(throws: BucketError.self) { try badPath.verify(publicKey: key) }
        var shortPath = proof
        shortPath.path.removeLast()
        #expect(throws: BucketError.self) { try shortPath.verify(publicKey: key) }
        var otherKey = proof
        otherKey.entry.key = "finding/forged"
        #expect(throws: BucketError.self) { try otherKey.verify(publicKey: key) }
        var otherTags = proof
        otherTags.entry.tags = ["even", "odd"]
        #expect(throws: BucketError.self) { try otherTags.verify(publicKey: key) }
        var otherIndex = proof
        otherIndex.entry.index = 7
        #expect(throws: BucketError.self) { try otherIndex.verify(publicKey: key) }
        var forged = proof
        forged.head.treeSize = 12
        #expect(throws: BucketError.self) { try forged.verify(publicKey: key) }
        #expect(throws: BucketError.self) { try proof.verify(publicKey: key, value: Array("value 7".utf8)) }
        let stranger = try #require(AuditPublicKey(rawRepresentation: Array(repeating: 9, count: 32)))
        #expect(throws: BucketError.self) { try proof.verify(publicKey: stranger) }
        try store.close()
    }

    @Test func aProofNeedsASignedHead() throws {
        let scratch = try Scratch()
        let store = try openStore(scratch.db, signEvery: 10)
        let entry = try store.put(namespace: "n", key: "k", value: [1])
        #expect(throws: BucketError.unsigned(namespace: "n", index: 0)) { try store.inclusionProof(for: entry) }
        try store.signHeads()
        try store.inclusionProof(for: entry).verify(publicKey: try #require(store.key).publicKey)
        try store.close()
    }

    @Test func reopeningResumesEveryNamespace() throws {
        let scratch = try Scratch()
        let key = try makeStore(scratch.db, count: 6, signEvery: 4)
        let store = try openStore(scratch.db, signEvery: 4, start: 1_800_000_000_000_000_000)
        #expect(try #require(store.key).publicKey == key)
        #expect(try store.put(namespace: "cases/1/findings", key: "later", value: [7]).index == 6)
        #expect(try store.put(namespace: "intel", key: "later", value: [8]).index == 3)
        #expect(try store.put(namespace: "fresh", key: "k", value: [9]).index == 0)
        try store.close()
        guard case .intact(let summary) = try BucketVerifier.verify(path: scratch.db, publicKey: key, strict: true) else {
            Issue.record("the resumed store does not verify")
            return
        }
        #expect(summary.namespaces == 3)
        #expect(summary.entries == 7 + 4 + 1)
        #expect(summary.unsignedEntries == 0)
        // cases/1/findings: heads at 4, 6 (close), 7 (close); intel: 3, 4; fresh: 1.
        #expect(summary.signedHeads == 6)
    }

    @Test func aSecondWriterIsRefusedButReadersAreNot() throws {
        let scratch = try Scratch()
        let store = try openStore(scratch.db)
        try store.put(namespace: "n", key: "k", value: [1, 2])
        #expect(throws: BucketError.busy(path: scratch.db)) { try openStore(scratch.db) }
        let reader = try BucketStore(path: scratch.db, options: BucketStore.Options(readOnly: true))
        #expect(try reader.get(namespace: "n", key: "k")?.value == [1, 2])
        #expect(throws: BucketError.readOnly(path: scratch.db)) { try reader.put(namespace: "n", key: "k", value: []) }
        try reader.close()
        try store.close()
        #expect(throws: BucketError.closed(path: scratch.db)) { try store.put(namespace: "n", key: "k", value: []) }
    }

    @Test func notABucketStoreIsRefused() throws {
        let scratch = try Scratch()
        let other = scratch.path + "/other.db"
        let queue = try DatabaseQueue(path: other)
        try queue.write { try $0.execute(sql: "CREATE TABLE t (x)") }
        try queue.close()
        #expect(throws: BucketError.notABucketStore(path: other, why: "its SQLite application id is 0, not 1299137099")) {
            try BucketStore(path: other, options: BucketStore.Options(readOnly: true))
        }
        #expect(throws: BucketError.notABucketStore(path: "/bin/sh", why: "not a SQLite database")) {
            try BucketVerifier.verify(path: "/bin/sh", publicKey: try #require(AuditPublicKey(rawRepresentation: Array(repeating: 9, count: 32))))
        }
    }

    @Test func boundsGiveClearErrors() throws {
        let scratch = try Scratch()
        let store = try openStore(scratch.db)
        func refusal(_ body: () throws -> Void) -> String {
            do { try body() } catch { return "\(error)" }
            return "accepted"
        }
        let longKey = String(repeating: "k", count: BucketLimits.keyBytes + 1)
        #expect(refusal { try store.put(namespace: "n", key: longKey, value: []) }.contains("is 1025 bytes: 1 to 1024 allowed"))
        #expect(refusal { try store.put(namespace: "n", key: "", value: []) } == "key \"\" is 0 bytes: 1 to 1024 allowed")
        #expect(refusal { try store.put(namespace: "n", key: "a\tb", value: []) } == "key \"a\\u{9}b\" holds a control character")
        let big = [UInt8](repeating: 0, count: BucketLimits.valueBytes + 1)
        #expect(refusal { try store.put(namespace: "n", key: "k", value: big) } == "value is 16777217 bytes: at most 16777216 (16 MiB) allowed")
        #expect(refusal { try store.put(namespace: "a//b", key: "k", value: []) }.contains("namespace \"a//b\" is malformed"))
        #expect(refusal { try store.put(namespace: "../x", key: "k", value: []) }.contains("is malformed"))
        let tags = (0...BucketLimits.tagCount).map { "t\($0)" }
        #expect(refusal { try store.put(namespace: "n", key: "k", value: [], tags: tags) } == "17 tags: at most 16 allowed")
        #expect(refusal { try store.put(namespace: "n", key: "k", value: [], tags: ["a b"]) } == "tag \"a b\" holds a space, comma or control character")
        #expect(refusal { try store.put(namespace: "n", key: "k", value: [], tags: [String(repeating: "t", count: 65)]) }.contains("is 65 bytes: 1 to 64 allowed"))
        // Repeats collapse and tags sort by bytes; at the limits a put is accepted.
        let entry = try store.put(namespace: "n", key: String(repeating: "k", count: BucketLimits.keyBytes), value: [],
                                  tags: ["b", "a", "b", String(repeating: "t", count: 64)])
        #expect(entry.tags == ["a", "b", String(repeating: "t", count: 64)])
        #expect(try store.namespaces() == ["n"])
        try store.close()
    }

    @Test func theKeyIsMadeWithMode0600AndALooseKeyIsRefused() throws {
        let scratch = try Scratch()
        try makeStore(scratch.db, count: 1)
        var info = stat()
        #expect(stat(scratch.db + ".key", &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(access(scratch.db + ".key.pub", R_OK) == 0)
        #expect(chmod(scratch.db + ".key", 0o644) == 0)
        #expect(throws: BucketError.self) { try openStore(scratch.db) }
        do { _ = try openStore(scratch.db) } catch { #expect("\(error)".contains("has mode 0644")) }
    }

    @Test func theTriggersRefuseUpdateDeleteAndOutOfOrderInserts() throws {
        let scratch = try Scratch()
        try makeStore(scratch.db, count: 5)
        let queue = try DatabaseQueue(path: scratch.db)
        let attempts = [
            #"DELETE FROM entries WHERE "index" = 1"#,
            "UPDATE entries SET key = 'x'",
            #"INSERT INTO entries (namespace, "index", key, content_hash, size, time, leaf_hash) SELECT namespace, 9, key, content_hash, size, time, leaf_hash FROM entries LIMIT 1"#,
            "DELETE FROM blobs",
            "UPDATE blobs SET data = x'00'",
            "DELETE FROM tags",
            "UPDATE tags SET tag = 'x'",
            #"INSERT INTO tags (namespace, tag, "index") VALUES ('cases/1/findings', 'new', 0)"#,
            "DELETE FROM heads",
            "UPDATE heads SET tree_size = 1",
            "INSERT INTO heads SELECT namespace, seq, tree_size, root_hash, time, signature, frontier FROM heads LIMIT 1",
        ]
        for sql in attempts {
            #expect(throws: DatabaseError.self, "\(sql)") { try queue.write { try $0.execute(sql: sql) } }
        }
        // A second insert of a stored value is ignored, REPLACE included: the bytes stay.
        let hash = BucketEntry.contentHash(of: Array("value 0".utf8))
        try queue.write { try $0.execute(sql: "INSERT OR REPLACE INTO blobs (hash, size, data) VALUES (?, 1, x'00')", arguments: [Data(hash.bytes)]) }
        #expect(try queue.read { try Data.fetchOne($0, sql: "SELECT data FROM blobs WHERE hash = ?", arguments: [Data(hash.bytes)]) } == Data("value 0".utf8))
        try queue.close()
    }

    @Test func aWriterRefusesToBuildOnADamagedTail() throws {
        let scratch = try Scratch()
        try makeStore(scratch.db, count: 6, signEvery: 4)
        // Entries 4 and 5 were signed on close; add an unsigned row whose leaf hash is wrong.
        try tamper(scratch.db, """
            INSERT INTO entries (namespace, "index", key, content_hash, size, time, leaf_hash)
            SELECT namespace, 6, 'x', content_hash, size, time, leaf_hash FROM entries WHERE namespace = 'cases/1/findings' AND "index" = 5
            """)
        do {
            _ = try openStore(scratch.db)
            Issue.record("the writer opened a damaged store")
        } catch {
            guard case .damaged(_, let finding)? = error as? BucketError else { Issue.record("\(error)"); return }
            #expect(finding.place == entryPlace("cases/1/findings", 6))
            #expect(finding.kind == .modified)
        }
    }
}
