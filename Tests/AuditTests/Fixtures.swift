import Audit
import Foundation
import Glibc
import GRDB
import Merkle
import Testing

/// A fresh directory under /tmp, removed when the value goes away.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/momin-audit-test.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw FixtureError("mkdtemp: \(String(cString: strerror(errno)))") }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A clock that ticks one microsecond per reading, so logs made by tests are reproducible.
func steppingClock(from start: UInt64 = 1_700_000_000_000_000_000) -> @Sendable () -> UInt64 {
    let counter = Counter(start)
    return { counter.next() }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: UInt64
    init(_ value: UInt64) { self.value = value }
    func next() -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        value += 1000
        return value
    }
}

/// One event of each kind, in turn.
func sampleEvent(_ n: Int) -> AuditEvent {
    let id = UInt64(n)
    switch n % 6 {
    case 0: return .toolRequest(ToolRequest(requestID: id, agent: "agent-\(n % 4)", tool: "exec", arguments: Array("[\"ls\",\"\(n)\"]".utf8)))
    case 1: return .decision(Decision(requestID: id, verdict: n % 4 == 1 ? .deny : .allow, rule: "rule \(n)", reason: "because"))
    case 2: return .resultDigest(ResultDigest(requestID: id, status: -Int64(n), byteCount: UInt64(n) * 10,
                                              sha256: Merkle.leafHash(Array("out \(n)".utf8))))
    case 3: return .lifecycle(.vmStart(vm: "vm-\(n)"))
    case 4: return .lifecycle(.vmStop(vm: "vm-\(n)", reason: "powered off ✓"))
    default: return .lifecycle(.policyLoad(source: "/etc/momin/policy-\(n).toml", sha256: Merkle.leafHash(Array("policy \(n)".utf8))))
    }
}

/// A tool call's events only (request, decision, result in turn, varied as `sampleEvent`'s):
/// no lifecycle event, whose head would come before `signEvery` (docs/audit.md).
func callEvent(_ n: Int) -> AuditEvent {
    sampleEvent(n / 3 * 6 + n % 3)
}

/// A closed log of `count` call entries with a head every `signEvery` (and none by time);
/// returns its public key.
@discardableResult
func makeLog(at path: String, count: Int, signEvery: UInt64 = 10) throws -> AuditPublicKey {
    let log = try AuditLog(path: path, options: AuditLog.Options(signEvery: signEvery, signInterval: nil, clock: steppingClock()))
    for n in 0..<count { try log.append(callEvent(n)) }
    let key = log.key.publicKey
    try log.close()
    return key
}

let allTriggers = ["entries_append_only", "entries_no_update", "entries_no_delete", "heads_append_only", "heads_no_update", "heads_no_delete",
                   "log_one_identity", "log_no_update", "log_no_delete"]

/// What an attacker with write access to the file can do: drop the guards, then any SQL.
func tamper(_ path: String, _ sql: String, _ arguments: StatementArguments = []) throws {
    let queue = try DatabaseQueue(path: path)
    try queue.writeWithoutTransaction { db in
        for trigger in allTriggers { try db.execute(sql: "DROP TRIGGER IF EXISTS \(trigger)") }
        try db.execute(sql: sql, arguments: arguments)
    }
    try queue.close()
}

func rawQuery<T>(_ path: String, _ body: (Database) throws -> T) throws -> T {
    let queue = try DatabaseQueue(path: path)
    defer { try? queue.close() }
    return try queue.read(body)
}

/// The finding of a broken log; records an issue if the log verifies.
func finding(_ path: String, key: AuditPublicKey, strict: Bool = false,
             sourceLocation: SourceLocation = #_sourceLocation) throws -> AuditFinding? {
    switch try AuditVerifier.verify(path: path, publicKey: key, strict: strict) {
    case .broken(let finding): return finding
    case .intact(let summary):
        Issue.record("the log verified: \(summary)", sourceLocation: sourceLocation)
        return nil
    }
}

func summary(_ path: String, key: AuditPublicKey, sourceLocation: SourceLocation = #_sourceLocation) throws -> AuditVerifier.Summary? {
    switch try AuditVerifier.verify(path: path, publicKey: key) {
    case .intact(let summary): return summary
    case .broken(let finding):
        Issue.record("the log did not verify: \(finding)", sourceLocation: sourceLocation)
        return nil
    }
}
