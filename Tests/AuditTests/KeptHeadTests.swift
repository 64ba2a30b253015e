import Audit
import Foundation
import GRDB
import Merkle
import Testing

/// A head kept apart from its log (docs/audit.md, "Head files"): its JSON line, and verify's
/// proof that the log still extends it, which is what catches a log cut back to an earlier
/// signed state with its triggers dropped and its later heads deleted too.
/// The log: 50 entries, a head every 10 (sizes 10, 20, 30, 40, 50); the kept head is head 2 (size 30).
@Suite struct KeptHeadTests {
    let dir: TemporaryDirectory
    let path: String
    let key: AuditPublicKey
    let kept: AuditVerifier.KeptHead

    init() throws {
        dir = try TemporaryDirectory()
        path = dir.file("log.db")
        key = try makeLog(at: path, count: 50, signEvery: 10)
        let log = try AuditLog(path: path)
        let head = try #require(try log.heads().first { $0.treeSize == 30 })
        try log.close()
        kept = AuditVerifier.KeptHead(PublishedHead(head: head, keyFingerprint: key.fingerprint), source: "kept.json")
    }

    func verify(kept: AuditVerifier.KeptHead? = nil, key: AuditPublicKey? = nil) throws -> AuditVerifier.Outcome {
        try AuditVerifier.verify(path: path, publicKey: key ?? self.key, kept: kept ?? self.kept)
    }

    @Test func theLogExtendsAHeadItSigned() throws {
        #expect(try verify() == AuditVerifier.verify(path: path, publicKey: key))
        // Appends after the head was kept change nothing.
        let log = try AuditLog(path: path)
        for n in 50..<57 { try log.append(callEvent(n)) }
        try log.close()
        guard case .intact(let summary) = try verify() else { Issue.record("not intact"); return }
        #expect(summary.entries == 57)
        // And every head of its own, the last included.
        let heads = try AuditLog(path: path).heads()
        for head in heads {
            let each = AuditVerifier.KeptHead(PublishedHead(head: head, keyFingerprint: key.fingerprint), source: "h")
            guard case .intact = try verify(kept: each) else { Issue.record("head \(head.sequence) not extended"); return }
        }
    }

    /// The attack the triggers cannot stop: drop them, cut the tail, delete the heads that
    /// signed it. The log alone verifies; against the kept head, the gap is named.
    @Test func aTailCutWithItsHeadsIsCaughtNamingTheGap() throws {
        try tamper(path, #"DELETE FROM entries WHERE "index" >= 25"#)
        try tamper(path, "DELETE FROM heads WHERE tree_size > 25")
        guard case .intact(let alone) = try AuditVerifier.verify(path: path, publicKey: key) else {
            Issue.record("the cut log alone should verify (its last head is at 20)")
            return
        }
        #expect(alone.entries == 25 && alone.signedSize == 20)
        guard case .broken(let found) = try verify() else { Issue.record("the cut was not caught"); return }
        #expect(found.place == .entry(25) && found.kind == .deleted)
        #expect(found.description == "entry 25: deleted: the log holds 25 entries, the head in kept.json signed 30: entries 25..29 were cut")
    }

    @Test func oneEntryCutIsNamedAsOne() throws {
        try tamper(path, #"DELETE FROM entries WHERE "index" >= 29"#)
        try tamper(path, "DELETE FROM heads WHERE tree_size > 29")
        guard case .broken(let found) = try verify() else { Issue.record("the cut was not caught"); return }
        #expect(found.detail.hasSuffix("signed 30: entry 29 was cut"), "\(found)")
    }

    /// Whoever holds the key cuts the log and writes another history over the cut: every
    /// head verifies, but the log no longer extends the kept head.
    @Test func anotherHistorySignedOverTheCutFailsTheConsistencyProof() throws {
        try tamper(path, #"DELETE FROM entries WHERE "index" >= 25"#)
        try tamper(path, "DELETE FROM heads WHERE tree_size > 25")
        let log = try AuditLog(path: path, options: AuditLog.Options(signEvery: 10))
        for n in 0..<25 { try log.append(.lifecycle(.vmStart(vm: "rewritten-\(n)"))) }
        try log.close()
        guard case .intact = try AuditVerifier.verify(path: path, publicKey: key) else { Issue.record("the rewrite alone should verify"); return }
        guard case .broken(let found) = try verify() else { Issue.record("the rewrite was not caught"); return }
        #expect(found.place == .head(sequence: 2, treeSize: 30) && found.kind == .rewritten, "\(found)")
        #expect(found.detail.contains("not an extension of the head in kept.json: the consistency proof from 30 to 50 entries fails"))
    }

    /// Same key, same events, same times: only the identity tells the logs apart.
    @Test func aHeadOfAnotherLogUnderTheSameKeyIsRefusedNamingBothLogs() throws {
        let otherPath = dir.file("other.db")
        let other = try AuditLog(path: otherPath, options: AuditLog.Options(keyPath: path + ".key", signEvery: 10, signInterval: nil, clock: steppingClock()))
        for n in 0..<50 { try other.append(callEvent(n)) }
        let foreign = try #require(try other.heads().first { $0.treeSize == 30 })
        let otherID = other.logID
        try other.close()
        #expect(foreign.root == kept.published.head.root)
        let published = AuditVerifier.KeptHead(PublishedHead(head: foreign, keyFingerprint: key.fingerprint), source: "other.json")
        guard case .broken(let found) = try verify(kept: published) else { Issue.record("another log's head was taken"); return }
        let mine = try AuditReader.logID(path: path)
        #expect(found.place == .head(sequence: 2, treeSize: 30) && found.kind == .otherLog)
        #expect(found.detail == "the head in other.json is of log \(otherID), this log is \(mine)")
    }

    @Test func aKeptHeadThatDoesNotVerifyIsForged() throws {
        var changed = kept
        changed.published.head.time += 1
        guard case .broken(let found) = try verify(kept: changed) else { Issue.record("a changed head was taken"); return }
        #expect(found.place == .head(sequence: 2, treeSize: 30) && found.kind == .forgedHead)
        #expect(!found.detail.contains("it names key"))
    }

    /// The log and the key beside it swapped for another signer's copy: it verifies on its own,
    /// but the kept head does not verify with the new key, and the message names the kept one's.
    @Test func aLogSwappedWithItsKeyFailsTheKeptHeadNamingItsKey() throws {
        let swapped = dir.file("swapped.db")
        let other = try makeLog(at: swapped, count: 50, signEvery: 10)
        guard case .intact = try AuditVerifier.verify(path: swapped, publicKey: other) else { Issue.record("should verify alone"); return }
        guard case .broken(let found) = try AuditVerifier.verify(path: swapped, publicKey: other, kept: kept) else {
            Issue.record("taken with another key")
            return
        }
        #expect(found.place == .head(sequence: 2, treeSize: 30) && found.kind == .forgedHead)
        #expect(found.detail == "the head in kept.json does not verify with key \(other) (it names key ed25519:\(key.fingerprint.prefix(16)))")
    }

    /// The entries stay, the heads from the kept one on go: only the kept head shows it.
    @Test func deletedHeadsAfterTheKeptOneAreNamed() throws {
        try tamper(path, "DELETE FROM heads WHERE seq >= 2")
        guard case .intact = try AuditVerifier.verify(path: path, publicKey: key) else { Issue.record("should verify alone"); return }
        guard case .broken(let found) = try verify() else { Issue.record("the deleted heads were not caught"); return }
        #expect(found.place == .head(sequence: 2, treeSize: nil) && found.kind == .deleted)
        #expect(found.detail == "missing: the head in kept.json is head 2 of this log, which holds heads 0..1 only")
    }

    /// The key holder re-signs head 2 over more entries: both heads 2 verify, but they differ.
    @Test func aSecondHeadOfTheSameSequenceNumberIsTwoHistories() throws {
        try tamper(path, "DELETE FROM heads WHERE seq >= 2")
        let log = try AuditLog(path: path)
        try log.signHead()
        try log.close()
        guard case .broken(let found) = try verify() else { Issue.record("two heads 2 were taken"); return }
        #expect(found.place == .head(sequence: 2, treeSize: 50) && found.kind == .rewritten, "\(found)")
        #expect(found.detail.contains("the key signed two histories"))
    }

    @Test func theHeadLineRoundTripsExactlyWithTheTimeInFull() throws {
        let head = SignedTreeHead(logID: try #require(LogID(bytes: Array(0..<16))), sequence: 7, treeSize: 1234,
                                  root: Merkle.leafHash([1]), time: 1_796_571_766_808_330_427, signature: Array(repeating: 0xAB, count: 64))
        let published = PublishedHead(head: head, keyFingerprint: String(repeating: "c", count: 64))
        let line = published.json
        #expect(line == #"{"log_id":"000102030405060708090a0b0c0d0e0f","sequence":7,"tree_size":1234,"root":"\#(head.root.hex)","#
                + #""time":1796571766808330427,"signature":"\#(String(repeating: "ab", count: 64))","key_fingerprint":"\#(String(repeating: "c", count: 64))"}"#)
        #expect(try PublishedHead(json: Array(line.utf8)) == published)
        // Key order and white space are free; hex may be upper case.
        let reordered = #"{ "key_fingerprint": "\#(String(repeating: "C", count: 64))", "time": 1796571766808330427, "sequence": 7,"#
            + #" "tree_size": 1234, "log_id": "000102030405060708090A0B0C0D0E0F", "root": "\#(head.root.hex)","#
            + #" "signature": "\#(String(repeating: "AB", count: 64))" }"#
        #expect(try PublishedHead(json: Array(reordered.utf8)) == published)
    }

    @Test func malformedHeadLinesAreRefusedSayingWhy() throws {
        let good = try PublishedHead.load(path: writeLines([kept.published.json]))
        #expect(good == kept.published)
        let json = kept.published.json
        let cases: [(String, String)] = [
            ("", "not a JSON object"),
            ("[1, 2]", "not a JSON object"),
            ("{", "not a JSON object"),
            (json.replacingOccurrences(of: #""sequence":2,"#, with: ""), #"no "sequence""#),
            (json.replacingOccurrences(of: #"{"#, with: #"{"extra":1,"#), #"unknown key "extra""#),
            (json.replacingOccurrences(of: #""sequence":2"#, with: #""sequence":-2"#), "sequence is not a whole number from 0 to 2^64-1"),
            (json.replacingOccurrences(of: #""sequence":2"#, with: #""sequence":2.5"#), "sequence is not a whole number"),
            (json.replacingOccurrences(of: #""tree_size":30"#, with: #""tree_size":18446744073709551616"#), "tree_size is not a whole number"),
            (json.replacingOccurrences(of: #""sequence":2"#, with: #""sequence":"2""#), "sequence is not a number"),
            (json.replacingOccurrences(of: #""root":""#, with: #""root":1,"x":""#), "unknown key \"x\""),
            (json.replacingOccurrences(of: #""signature":""#, with: #""signature":null,"y":""#), "unknown key \"y\""),
            (json.replacingOccurrences(of: #""signature":""#, with: #""signature":7,"z":""#), "unknown key \"z\""),
            (json.replacingOccurrences(of: #""sequence":2"#, with: #""sequence":null"#), "sequence is not a number"),
            (json.replacingOccurrences(of: #""\#(Hex.encode(kept.published.head.signature))""#, with: "7"), "signature is not a string"),
            (json.replacingOccurrences(of: kept.published.head.root.hex, with: String(kept.published.head.root.hex.dropLast(2))),
             "root is not 64 hex digits"),
            (json.replacingOccurrences(of: kept.published.head.logID.hex, with: "zz" + kept.published.head.logID.hex.dropFirst(2)),
             "log_id is not 32 hex digits"),
        ]
        for (line, why) in cases {
            #expect(throws: HeadFormatError.self, "\(line)") { try PublishedHead(json: Array(line.utf8)) }
            do { _ = try PublishedHead(json: Array(line.utf8)) } catch {
                #expect(error.description.contains(why), "\(line): \(error)")
            }
        }
    }

    /// A witness file: the last line is the head; only the file's end is read.
    @Test func aHeadFileGivesItsLastLine() throws {
        let log = try AuditLog(path: path)
        let heads = try log.heads().map { PublishedHead(head: $0, keyFingerprint: key.fingerprint).json }
        try log.close()
        let witness = try writeLines(heads)
        #expect(try PublishedHead.load(path: witness).head.treeSize == 50)
        // A big file whose earlier lines are not heads at all.
        let big = try writeLines(Array(repeating: String(repeating: "x", count: 1000), count: 2000) + [heads[2]], trailing: "\n\n")
        #expect(try PublishedHead.load(path: big).head.treeSize == 30)
        let noNewline = try writeLines([heads[0], heads[1]], trailing: "")
        #expect(try PublishedHead.load(path: noNewline).head.treeSize == 20)
    }

    @Test func unreadableHeadFilesAreRefusedByName() throws {
        func refusal(_ file: String) -> String? {
            do { _ = try PublishedHead.load(path: file) } catch { return error.description }
            return nil
        }
        #expect(refusal(dir.file("missing"))?.hasPrefix("head file \(dir.file("missing")): cannot open") == true)
        #expect(refusal(dir.path)?.contains("not a regular file") == true)
        #expect(refusal(try writeLines([], trailing: "\n"))?.contains("it is empty") == true)
        #expect(refusal(try writeLines([String(repeating: "y", count: 5000)]))?.contains("last line is over 4096 bytes") == true)
        #expect(refusal(try writeLines(["not json"]))?.contains("its last line is not a signed head: not a JSON object") == true)
    }

    private func writeLines(_ lines: [String], trailing: String = "\n") throws -> String {
        let file = dir.file("heads.\(UInt64.random(in: 0 ... .max))")
        try (lines.joined(separator: "\n") + trailing).write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
}
