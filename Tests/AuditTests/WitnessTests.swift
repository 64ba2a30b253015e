import Audit
import Foundation
import Glibc
import Testing

/// docs/audit.md, "Witness files": every head the writer signs, appended to a second file as
/// its JSON line; a line that cannot be written is an error, and the log takes no more.
@Suite struct WitnessTests {
    func lines(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    @Test func everySignedHeadIsAppendedAsItsJSONLine() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let witness = dir.file("witness")
        // Whatever the file held before stays: lines are only appended.
        try "earlier line\n".write(toFile: witness, atomically: true, encoding: .utf8)
        let log = try AuditLog(path: path, options: AuditLog.Options(signEvery: 3, signInterval: nil, witnessPath: witness))
        for n in 0..<7 { try log.append(callEvent(n)) }
        try log.append(.lifecycle(.vmStart(vm: "w")))
        try log.append(callEvent(8))
        try log.signHead()
        try log.append(callEvent(9))
        let key = log.key.publicKey
        try log.close()
        let heads = try AuditLog(path: path).heads()
        #expect(heads.map(\.treeSize) == [3, 6, 8, 9, 10])
        let expected = heads.map { PublishedHead(head: $0, keyFingerprint: key.fingerprint).json }
        #expect(try lines(witness) == ["earlier line"] + expected + [""])
        for line in expected { #expect(try PublishedHead(json: Array(line.utf8)).head.isValid(for: key)) }
        // The witness is a head file: its last line is the last head, and the log extends it.
        let kept = try PublishedHead.load(path: witness)
        #expect(kept.head == heads.last)
        guard case .intact = try AuditVerifier.verify(path: path, publicKey: key, kept: AuditVerifier.KeptHead(kept, source: witness)) else {
            Issue.record("the log does not extend its witness")
            return
        }
    }

    /// The heads the interval thread signs are witnessed too.
    @Test func theIntervalThreadsHeadsAreWitnessed() throws {
        let dir = try TemporaryDirectory()
        let witness = dir.file("witness")
        let events = SigningCadenceTests.Events()
        let log = try AuditLog(path: dir.file("log.db"), options: AuditLog.Options(
            signEvery: 1000, signInterval: .milliseconds(20), intervalHook: events.hook, witnessPath: witness))
        try log.append(callEvent(0))
        #expect(events.wait { !$0.isEmpty })
        let head = try #require(events.signed.first)
        #expect(try lines(witness) == [PublishedHead(head: head, keyFingerprint: log.key.publicKey.fingerprint).json, ""])
        try log.close()
    }

    @Test func aWitnessThatCannotBeOpenedIsRefusedByName() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        #expect(throws: AuditError.witness(path: path, witness: dir.path, problem: "cannot open: Is a directory")) {
            try AuditLog(path: path, options: AuditLog.Options(witnessPath: dir.path))
        }
        // A FIFO is refused, with a reader at its other end or not, and never waited on.
        let fifo = dir.file("fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: AuditError.witness(path: path, witness: fifo, problem: "cannot open: No such device or address")) {
            try AuditLog(path: path, options: AuditLog.Options(witnessPath: fifo))
        }
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        defer { close(reader) }
        #expect(throws: AuditError.witness(path: path, witness: fifo, problem: "not a regular file or a character device")) {
            try AuditLog(path: path, options: AuditLog.Options(witnessPath: fifo))
        }
        #expect { try AuditLog(path: path, options: AuditLog.Options(witnessPath: dir.file("no/such/dir"))) } throws: { error in
            "\(error)" == "audit log \(path): witness \(dir.file("no/such/dir")): cannot open: No such file or directory"
        }
        // Refused before anything is written: the log opens without it.
        let log = try AuditLog(path: path)
        #expect(log.size == 0)
        try log.close()
    }

    /// /dev/full takes the open and fails every write (ENOSPC): the head is in the log, the
    /// append says it was not witnessed, and the log takes nothing more until it is reopened.
    @Test func aWitnessLineThatCannotBeWrittenIsAnErrorAndTheLogTakesNoMore() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let log = try AuditLog(path: path, options: AuditLog.Options(signEvery: 2, signInterval: nil, witnessPath: "/dev/full"))
        try log.append(callEvent(0))
        #expect { try log.append(callEvent(1)) } throws: { error in
            guard case AuditError.witness(path, "/dev/full", let problem) = error else { return false }
            return problem.contains("head 0 (tree size 2) is signed in the log but could not be witnessed") && problem.contains("No space left on device")
        }
        #expect(log.size == 2 && log.lastHead?.treeSize == 2)
        #expect(throws: AuditError.self) { try log.append(callEvent(2)) }
        #expect(throws: AuditError.self) { try log.signHead() }
        #expect(log.size == 2)
        #expect(throws: AuditError.self) { try log.close() }
        // Closed all the same: the next writer opens it.
        let reopened = try AuditLog(path: path, options: AuditLog.Options(signInterval: nil))
        #expect(reopened.size == 2)
        try reopened.close()
    }
}
