import Audit
import Foundation
import GRDB
import Merkle
import Testing

@Suite struct AuditLogTests {
    @Test func appendSignsEveryNAndOnCloseAndTheRootIsTheMerkleRootOfTheLeaves() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let log = try AuditLog(path: path, options: AuditLog.Options(signEvery: 4, signInterval: nil, clock: steppingClock()))
        var records: [AuditRecord] = []
        for n in 0..<10 { records.append(try log.append(callEvent(n))) }
        #expect(records.map(\.index) == Array(0..<10))
        #expect(log.size == 10)
        #expect(log.lastHead?.treeSize == 8)
        let leaves = try records.map { try $0.leafData() }
        #expect(log.root == Merkle.root(ofLeaves: leaves))
        try log.close()
        #expect(throws: AuditError.closed(path: path)) { try log.append(sampleEvent(0)) }

        let reopened = try AuditLog(path: path)
        let heads = try reopened.heads()
        #expect(heads.map(\.treeSize) == [4, 8, 10])
        #expect(heads.map(\.sequence) == [0, 1, 2])
        for head in heads {
            #expect(head.root == Merkle.root(ofLeaves: Array(leaves.prefix(Int(head.treeSize)))))
            #expect(head.isValid(for: reopened.key.publicKey))
        }
        for record in records { #expect(try reopened.record(at: record.index) == record) }
        #expect(try reopened.record(at: 10) == nil)
        try reopened.close()
    }

    @Test func aReopenedLogResumesWhereItStopped() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let key = try makeLog(at: path, count: 10, signEvery: 4)
        let log = try AuditLog(path: path, options: AuditLog.Options(signEvery: 4, signInterval: nil))
        #expect(log.size == 10)
        #expect(log.lastHead?.treeSize == 10)
        for n in 10..<15 { #expect(try log.append(callEvent(n)).index == UInt64(n)) }
        // Batches are one transaction and keep counting.
        let batch = try log.append(contentsOf: (15..<20).map(callEvent))
        #expect(batch.map(\.index) == Array(15..<20))
        let root = log.root
        try log.close()
        let result = try #require(try summary(path, key: key))
        #expect(result.entries == 20)
        #expect(result.root == root)
        #expect(result.signedSize == 20)
        #expect(result.unsignedEntries == 0)
        #expect(try AuditLog(path: path).heads().map(\.treeSize) == [4, 8, 10, 14, 20])
    }

    @Test func aLogWithAnUnsignedTailResumesAndSignsIt() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let key = try makeLog(at: path, count: 12, signEvery: 5)
        // Drop the head close() signed, as if the writer had died before signing the tail.
        try tamper(path, "DELETE FROM heads WHERE tree_size = 12")
        let tail = try #require(try summary(path, key: key))
        #expect(tail.entries == 12 && tail.signedSize == 10 && tail.unsignedEntries == 2)
        let strict = try #require(try finding(path, key: key, strict: true))
        #expect(strict.place == .entry(10) && strict.kind == .unsigned)

        let log = try AuditLog(path: path, options: AuditLog.Options(signEvery: 5, signInterval: nil))
        #expect(log.size == 12)
        try log.append(callEvent(12))
        try log.close()
        let after = try #require(try summary(path, key: key))
        #expect(after.entries == 13 && after.signedSize == 13)
    }

    @Test func theStoredProofsVerifyAgainstTheSignedHeads() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        _ = try makeLog(at: path, count: 37, signEvery: 8)
        let log = try AuditLog(path: path)
        defer { try? log.close() }
        let heads = try log.heads()
        #expect(heads.map(\.treeSize) == [8, 16, 24, 32, 37])
        for head in heads {
            for index in stride(from: 0, to: head.treeSize, by: 3) {
                let proof = try log.inclusionProof(index: index, treeSize: head.treeSize)
                let leaf = Merkle.leafHash(try #require(try log.record(at: index)).leafData())
                try Merkle.verifyInclusion(leafHash: leaf, index: index, treeSize: head.treeSize, proof: proof, root: head.root)
            }
        }
        for old in heads {
            for new in heads where new.treeSize >= old.treeSize {
                let proof = try log.consistencyProof(oldSize: old.treeSize, newSize: new.treeSize)
                try Merkle.verifyConsistency(oldSize: old.treeSize, newSize: new.treeSize, oldRoot: old.root, newRoot: new.root, proof: proof)
            }
        }
        #expect(throws: AuditError.self) { try log.inclusionProof(index: 37, treeSize: 37) }
        #expect(throws: AuditError.self) { try log.consistencyProof(oldSize: 8, newSize: 38) }
    }

    @Test func oneWriterAtATime() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let first = try AuditLog(path: path)
        #expect(throws: AuditError.busy(path: path)) { try AuditLog(path: path) }
        try first.append(sampleEvent(0))
        try first.close()
        let second = try AuditLog(path: path)
        #expect(second.size == 1)
        try second.close()
    }

    @Test func theLogIsInWALModeAndPrivate() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        try makeLog(at: path, count: 3)
        #expect(try rawQuery(path) { try String.fetchOne($0, sql: "PRAGMA journal_mode") } == "wal")
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o077 == 0)
    }

    @Test func aLogSignedWithAnotherKeyIsNotExtended() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        try makeLog(at: path, count: 5)
        #expect(throws: AuditError.keyMismatch(path: path, keyPath: dir.file("other.key"))) {
            try AuditLog(path: path, options: AuditLog.Options(keyPath: dir.file("other.key")))
        }
    }

    @Test func aDamagedTailIsNotBuiltUpon() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        try makeLog(at: path, count: 12, signEvery: 5)
        try tamper(path, "DELETE FROM heads WHERE tree_size = 12")
        try tamper(path, #"UPDATE entries SET data = CAST(x'00' || data AS BLOB) WHERE "index" = 11"#)
        #expect { try AuditLog(path: path) } throws: { error in
            guard case AuditError.damaged(_, let finding) = error else { return false }
            return finding.place == .entry(11) && finding.kind == .modified
        }
        try tamper(path, #"DELETE FROM entries WHERE "index" = 3"#)
        #expect { try AuditLog(path: path) } throws: { error in
            guard case AuditError.damaged(_, let finding) = error else { return false }
            return finding.place == .entry(3) && finding.kind == .deleted
        }
    }

    /// The second guard: with the triggers in place, raw SQL cannot rewrite history either.
    @Test func historyRewritesAreRefusedByTheSchema() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let key = try makeLog(at: path, count: 20, signEvery: 5)
        let before = try #require(try summary(path, key: key))
        let attempts = [
            #"UPDATE entries SET kind = 'decision' WHERE "index" = 3"#,
            #"UPDATE entries SET "index" = 100 WHERE "index" = 19"#,
            #"DELETE FROM entries WHERE "index" = 19"#,
            "DELETE FROM entries",
            #"INSERT OR REPLACE INTO entries SELECT "index", time, kind, data, leaf_hash FROM entries WHERE "index" = 5"#,
            #"REPLACE INTO entries SELECT 2, time, kind, data, leaf_hash FROM entries WHERE "index" = 5"#,
            #"INSERT INTO entries SELECT 25, time, kind, data, leaf_hash FROM entries WHERE "index" = 5"#,
            "UPDATE heads SET tree_size = 3 WHERE seq = 0",
            "DELETE FROM heads WHERE seq = 3",
            "INSERT INTO heads SELECT seq + 10, tree_size, root_hash, time, signature, frontier FROM heads WHERE seq = 3",
            "INSERT INTO heads SELECT 4, 3, root_hash, time, signature, frontier FROM heads WHERE seq = 0",
            "INSERT OR REPLACE INTO heads SELECT 1, tree_size, root_hash, time, signature, frontier FROM heads WHERE seq = 0",
        ]
        let queue = try DatabaseQueue(path: path)
        for sql in attempts {
            #expect(throws: DatabaseError.self, "\(sql)") { try queue.write { try $0.execute(sql: sql) } }
        }
        try queue.close()
        #expect(try summary(path, key: key) == before)
    }

    @Test func eventsTooLargeAreRefusedAndNothingIsWritten() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let log = try AuditLog(path: path)
        try log.append(sampleEvent(0))
        let huge = AuditEvent.toolRequest(ToolRequest(requestID: 1, agent: "a", tool: "t",
                                                      arguments: [UInt8](repeating: 0, count: AuditRecord.maximumFieldLength + 1)))
        #expect(throws: AuditError.self) { try log.append(contentsOf: [sampleEvent(1), huge]) }
        #expect(log.size == 1)
        #expect(try log.append(sampleEvent(2)).index == 1)
        try log.close()
    }

    @Test func verifyRefusesWhatIsNotAnAuditLog() throws {
        let dir = try TemporaryDirectory()
        let key = try AuditKey.loadOrCreate(path: dir.file("k")).publicKey
        #expect(throws: AuditError.self) { try AuditVerifier.verify(path: dir.file("missing.db"), publicKey: key) }
        #expect(FileManager.default.createFile(atPath: dir.file("text.db"), contents: Data(String(repeating: "not sqlite\n", count: 100).utf8)))
        #expect { try AuditVerifier.verify(path: dir.file("text.db"), publicKey: key) } throws: { error in
            guard case AuditError.notAnAuditLog = error else { return false }
            return true
        }
        let other = try DatabaseQueue(path: dir.file("other.db"))
        try other.write { try $0.execute(sql: "CREATE TABLE t (x)") }
        try other.close()
        #expect { try AuditVerifier.verify(path: dir.file("other.db"), publicKey: key) } throws: { error in
            guard case AuditError.notAnAuditLog(_, let why) = error else { return false }
            return why.contains("application id")
        }
    }

    @Test func anEmptyLogVerifies() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let key = try makeLog(at: path, count: 0)
        let result = try #require(try summary(path, key: key))
        #expect(result.entries == 0 && result.signedHeads == 0 && result.root == Merkle.emptyRoot)
    }
}
