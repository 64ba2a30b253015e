import Audit
import Foundation
import GRDB
import Merkle
import Testing

/// docs/audit.md, "Log identity": 16 random bytes made with the log, fixed, signed into every head.
@Suite struct LogIdentityTests {
    @Test func aLogGetsAnIdentityWhenItIsMadeAndKeepsIt() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let log = try AuditLog(path: path)
        let id = log.logID
        try log.append(sampleEvent(0))
        try log.close()
        let reopened = try AuditLog(path: path)
        #expect(reopened.logID == id)
        #expect(try reopened.heads().allSatisfy { $0.logID == id })
        try reopened.close()
        #expect(try rawQuery(path) { try Data.fetchAll($0, sql: "SELECT id FROM log") } == [Data(id.bytes)])
        #expect(try AuditReader.logID(path: path) == id)

        // Another log, under the same key, has another identity.
        let other = try AuditLog(path: dir.file("other.db"), options: AuditLog.Options(keyPath: path + ".key"))
        #expect(other.logID != id)
        try other.close()
    }

    @Test func theIdentityIsInTheSchemaVersionAndGuardedByTriggers() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let key = try makeLog(at: path, count: 12, signEvery: 5)
        #expect(try rawQuery(path) { try Int.fetchOne($0, sql: "PRAGMA user_version") } == 2)
        let before = try #require(try summary(path, key: key))
        let queue = try DatabaseQueue(path: path)
        for sql in ["INSERT INTO log (id) VALUES (randomblob(16))", "UPDATE log SET id = randomblob(16)", "DELETE FROM log"] {
            #expect(throws: DatabaseError.self, "\(sql)") { try queue.write { try $0.execute(sql: sql) } }
        }
        try queue.close()
        #expect(try summary(path, key: key) == before)
    }

    /// Two logs signed by one key: a head copied from one into the other does not verify there,
    /// because each head signs its log's identity.
    @Test func aHeadOfAnotherLogUnderTheSameKeyIsForged() throws {
        let dir = try TemporaryDirectory()
        let keyPath = dir.file("shared.key")
        var logs: [String] = []
        for name in ["a.db", "b.db"] {
            let path = dir.file(name)
            let log = try AuditLog(path: path, options: AuditLog.Options(keyPath: keyPath, signEvery: 10, signInterval: nil, clock: steppingClock()))
            // The same events at the same times: the trees are equal, only the identities differ.
            for n in 0..<20 { try log.append(callEvent(n)) }
            try log.close()
            logs.append(path)
        }
        let key = try AuditPublicKey.load(path: keyPath + ".pub")
        let roots = try logs.map { path in try rawQuery(path) { try Data.fetchAll($0, sql: "SELECT root_hash FROM heads ORDER BY seq") } }
        #expect(roots[0] == roots[1])
        let stolen = try rawQuery(logs[1]) { try Row.fetchOne($0, sql: "SELECT signature FROM heads WHERE seq = 1")! }
        try tamper(logs[0], "UPDATE heads SET signature = ? WHERE seq = 1", [stolen[0] as Data])
        let found = try #require(try finding(logs[0], key: key))
        #expect(found.place == .head(sequence: 1, treeSize: 20) && found.kind == .forgedHead, "\(found)")
    }

    @Test func aChangedIdentityBreaksEveryHead() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let key = try makeLog(at: path, count: 12, signEvery: 5)
        try tamper(path, "UPDATE log SET id = randomblob(16)")
        let found = try #require(try finding(path, key: key))
        #expect(found.place == .head(sequence: 0, treeSize: 5) && found.kind == .forgedHead, "\(found)")
    }

    @Test(arguments: ["DELETE FROM log", "INSERT INTO log VALUES (randomblob(16))"])
    func aMissingOrSecondIdentityIsNamed(sql: String) throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let key = try makeLog(at: path, count: 3)
        try tamper(path, sql)
        let found = try #require(try finding(path, key: key))
        #expect(found.place == .identity && found.kind == .modified, "\(found)")
        #expect(found.description.hasPrefix("log identity: modified: the log table holds"))
        #expect { try AuditLog(path: path) } throws: { error in
            guard case AuditError.damaged(_, let finding) = error else { return false }
            return finding.place == .identity
        }
    }

    @Test func anIdentityOfTheWrongSizeIsNamed() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let key = try makeLog(at: path, count: 3)
        try tamper(path, "CREATE TABLE copy AS SELECT * FROM log; DROP TABLE log; ALTER TABLE copy RENAME TO log")
        try tamper(path, "UPDATE log SET id = x'0102'")
        let found = try #require(try finding(path, key: key))
        #expect(found.place == .identity && found.detail.contains("not 16 bytes"), "\(found)")
    }

    /// A version 1 log (no identity) is refused by its version, for writing and verifying alike.
    @Test func aVersion1LogIsRefusedNamingItsVersion() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("old.db")
        let key = try makeLog(at: path, count: 3)
        let queue = try DatabaseQueue(path: path)
        try queue.writeWithoutTransaction { try $0.execute(sql: "PRAGMA user_version = 1") }
        try queue.close()
        let expected = AuditError.notAnAuditLog(path: path, why: "format version 1, this momin reads version 2")
        #expect(throws: expected) { try AuditVerifier.verify(path: path, publicKey: key) }
        #expect(throws: expected) { try AuditLog(path: path) }
        #expect(expected.description.contains("version 1") && expected.description.contains(path))
    }

    @Test func logIDsParseFrom32HexDigitsOnly() throws {
        let id = try #require(LogID(bytes: Array(0..<16)))
        #expect(id.hex == "000102030405060708090a0b0c0d0e0f")
        #expect(LogID(hex: id.hex) == id)
        #expect(LogID(hex: id.hex.uppercased()) == id)
        #expect(LogID(hex: String(id.hex.dropLast())) == nil)
        #expect(LogID(hex: id.hex + "00") == nil)
        #expect(LogID(hex: "zz" + id.hex.dropFirst(2)) == nil)
        #expect(LogID(bytes: Array(0..<15)) == nil)
    }
}
