import Audit
import Foundation
import GRDB
import Merkle
import Testing

/// Each case edits a closed log the way someone with write access to the file could (triggers
/// dropped, raw SQL), then expects verify to name the first bad place and the kind of change.
/// The log: 50 entries, a head every 10 (sizes 10, 20, 30, 40, 50).
@Suite struct TamperTests {
    let dir: TemporaryDirectory
    let path: String
    let key: AuditPublicKey

    init() throws {
        dir = try TemporaryDirectory()
        path = dir.file("log.db")
        key = try makeLog(at: path, count: 50, signEvery: 10)
    }

    func expectFinding(_ place: AuditFinding.Place, _ kind: AuditFinding.Kind, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let found = try finding(path, key: key, sourceLocation: sourceLocation)
        #expect(found?.place == place, "\(found.map(String.init(describing:)) ?? "none")", sourceLocation: sourceLocation)
        #expect(found?.kind == kind, "\(found.map(String.init(describing:)) ?? "none")", sourceLocation: sourceLocation)
    }

    func leafData(_ index: Int) throws -> [UInt8] {
        try rawQuery(path) { db in
            Array(try Data.fetchOne(db, sql: #"SELECT data FROM entries WHERE "index" = ?"#, arguments: [index]) ?? Data())
        }
    }

    @Test func theUntouchedLogVerifies() throws {
        let result = try #require(try summary(path, key: key))
        #expect(result.entries == 50 && result.signedHeads == 5 && result.signedSize == 50 && result.unsignedEntries == 0)
    }

    @Test(arguments: [0, 17, 49]) func aFlippedBitInTheData(index: Int) throws {
        var data = try leafData(index)
        data[data.count - 1] ^= 0x01
        try tamper(path, #"UPDATE entries SET data = ? WHERE "index" = ?"#, [Data(data), index])
        try expectFinding(.entry(UInt64(index)), .modified)
    }

    @Test func aChangedLeafHash() throws {
        try tamper(path, #"UPDATE entries SET leaf_hash = zeroblob(32) WHERE "index" = 23"#)
        try expectFinding(.entry(23), .modified)
    }

    @Test func aChangedTimeColumn() throws {
        try tamper(path, #"UPDATE entries SET time = time + 1 WHERE "index" = 31"#)
        try expectFinding(.entry(31), .modified)
    }

    @Test func aChangedKindColumn() throws {
        try tamper(path, #"UPDATE entries SET kind = 'decision' WHERE "index" = 6"#)
        try expectFinding(.entry(6), .modified)
    }

    /// Data and leaf hash rewritten together: only the signed root shows it, so the finding
    /// is the range since the previous head (20...29), named by its first entry.
    @Test func aConsistentRewriteIsCaughtByTheNextSignedRoot() throws {
        let record = try AuditRecord(leafData: leafData(25))
        let forged = AuditRecord(index: record.index, time: record.time, event: .lifecycle(.vmStart(vm: "nothing happened")))
        let data = try forged.leafData()
        try tamper(path, #"UPDATE entries SET data = ?, leaf_hash = ?, kind = ? WHERE "index" = 25"#,
                   [Data(data), Data(Merkle.leafHash(data).bytes), forged.event.kind])
        let found = try #require(try finding(path, key: key))
        #expect(found.place == .entry(20) && found.kind == .rewritten)
        #expect(found.description.contains("from 20 to 29"))
    }

    @Test(arguments: [0, 12, 20, 49]) func aDeletedRow(index: Int) throws {
        try tamper(path, #"DELETE FROM entries WHERE "index" = ?"#, [index])
        try expectFinding(.entry(UInt64(index)), .deleted)
    }

    @Test func aDeletedRowWithTheRestRenumbered() throws {
        try tamper(path, #"DELETE FROM entries WHERE "index" = 14"#)
        try tamper(path, #"UPDATE entries SET "index" = "index" + 1000 WHERE "index" > 14"#)
        try tamper(path, #"UPDATE entries SET "index" = "index" - 1001 WHERE "index" > 1000"#)
        try expectFinding(.entry(14), .deleted)
    }

    @Test func theLastRowsDeleted() throws {
        try tamper(path, #"DELETE FROM entries WHERE "index" >= 45"#)
        try expectFinding(.entry(45), .deleted)
    }

    /// Rows from 33 on moved up by one, and a copy of entry 8 put in the gap.
    @Test func anInsertedCopy() throws {
        try shiftUp(from: 33)
        try tamper(path, #"INSERT INTO entries SELECT 33, time, kind, data, leaf_hash FROM entries WHERE "index" = 8"#)
        let found = try #require(try finding(path, key: key))
        #expect(found.place == .entry(33) && found.kind == .inserted)
        #expect(found.detail.contains("copy of entry 8"))
    }

    /// A well-formed new leaf, encoded for its position, with its own leaf hash.
    @Test func anInsertedWellFormedLeaf() throws {
        try shiftUp(from: 33)
        let forged = AuditRecord(index: 33, time: 1, event: .decision(Decision(requestID: 1, verdict: .allow, rule: "x", reason: "forged")))
        let data = try forged.leafData()
        try tamper(path, #"INSERT INTO entries VALUES (33, 1, 'decision', ?, ?)"#, [Data(data), Data(Merkle.leafHash(data).bytes)])
        try expectFinding(.entry(33), .inserted)
    }

    @Test func anAppendedRowAfterTheLastHead() throws {
        try tamper(path, #"INSERT INTO entries SELECT 50, time, kind, data, leaf_hash FROM entries WHERE "index" = 49"#)
        try expectFinding(.entry(50), .inserted)
    }

    @Test func aRowWithAFractionalIndex() throws {
        try tamper(path, "CREATE TABLE copy AS SELECT * FROM entries; DROP TABLE entries; ALTER TABLE copy RENAME TO entries")
        try tamper(path, #"INSERT INTO entries SELECT 7.5, time, kind, data, leaf_hash FROM entries WHERE "index" = 7"#)
        try expectFinding(.entry(8), .inserted)
    }

    @Test(arguments: [(3, 4), (3, 44), (0, 49), (19, 20)]) func swappedRows(a: Int, b: Int) throws {
        try tamper(path, #"UPDATE entries SET "index" = 1000 WHERE "index" = ?"#, [a])
        try tamper(path, #"UPDATE entries SET "index" = ? WHERE "index" = ?"#, [a, b])
        try tamper(path, #"UPDATE entries SET "index" = ? WHERE "index" = 1000"#, [b])
        let found = try #require(try finding(path, key: key))
        #expect(found.place == .entry(UInt64(a)) && found.kind == .reordered, "\(found)")
    }

    @Test func aHeadWithAnotherRoot() throws {
        try tamper(path, "UPDATE heads SET root_hash = zeroblob(32) WHERE seq = 2")
        try expectFinding(.head(sequence: 2, treeSize: 30), .forgedHead)
    }

    @Test func aHeadWithAChangedTimeOrSize() throws {
        try tamper(path, "UPDATE heads SET time = time + 1 WHERE seq = 1")
        try expectFinding(.head(sequence: 1, treeSize: 20), .forgedHead)
    }

    @Test func aHeadSignedByAnotherKey() throws {
        // A log of the same events signed by another key (x.db.key): its head 1 is
        // well-formed and validly signed, by the wrong key.
        let dir2 = try TemporaryDirectory()
        try makeLog(at: dir2.file("x.db"), count: 50, signEvery: 10)
        let stolen = try rawQuery(dir2.file("x.db")) { db in
            try Row.fetchOne(db, sql: "SELECT root_hash, signature FROM heads WHERE seq = 1")!
        }
        try tamper(path, "UPDATE heads SET root_hash = ?, signature = ? WHERE seq = 1",
                   [stolen[0] as Data, stolen[1] as Data])
        try expectFinding(.head(sequence: 1, treeSize: 20), .forgedHead)
    }

    @Test func aMalformedSignature() throws {
        // The CHECK on its length goes with a rebuilt table.
        try tamper(path, "CREATE TABLE copy AS SELECT * FROM heads; DROP TABLE heads; ALTER TABLE copy RENAME TO heads")
        try tamper(path, "UPDATE heads SET signature = x'00' WHERE seq = 4")
        try expectFinding(.head(sequence: 4, treeSize: nil), .forgedHead)
    }

    @Test func aDeletedHeadInTheMiddle() throws {
        try tamper(path, "DELETE FROM heads WHERE seq = 2")
        try expectFinding(.head(sequence: 2, treeSize: nil), .deleted)
    }

    @Test func aChangedFrontier() throws {
        try tamper(path, "UPDATE heads SET frontier = zeroblob(length(frontier)) WHERE seq = 3")
        try expectFinding(.head(sequence: 3, treeSize: 40), .modified)
    }

    @Test func theWrongPublicKey() throws {
        let other = try AuditKey.loadOrCreate(path: dir.file("other.key")).publicKey
        let found = try #require(try finding(path, key: other))
        #expect(found.place == .head(sequence: 0, treeSize: 10) && found.kind == .forgedHead)
    }

    /// The first problem in log order wins.
    @Test func theFirstOfSeveralProblemsIsNamed() throws {
        try tamper(path, #"DELETE FROM entries WHERE "index" = 40"#)
        try tamper(path, "UPDATE heads SET root_hash = zeroblob(32) WHERE seq = 2")
        var data = try leafData(11)
        data[5] ^= 0x80
        try tamper(path, #"UPDATE entries SET data = ? WHERE "index" = 11"#, [Data(data)])
        try expectFinding(.entry(11), .modified)
    }

    /// Moves every row from `index` on up by one, leaving a gap at `index`.
    func shiftUp(from index: Int) throws {
        try tamper(path, #"UPDATE entries SET "index" = "index" + 1000 WHERE "index" >= ?"#, [index])
        try tamper(path, #"UPDATE entries SET "index" = "index" - 999 WHERE "index" >= 1000"#)
    }
}
