import Audit
import Buckets
import Foundation
import GRDB
import Merkle
import Synchronization
import Testing

/// A scratch folder for one test, removed with it.
final class Scratch {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "momin-buckets-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    var db: String { path + "/store.db" }
}

/// Nanoseconds from a fixed start, one millisecond per reading.
func tickingClock(from start: UInt64 = 1_700_000_000_000_000_000) -> @Sendable () -> UInt64 {
    let now = Mutex(start)
    return { now.withLock { $0 += 1_000_000; return $0 } }
}

func openStore(_ path: String, signEvery: UInt64 = 4, start: UInt64 = 1_700_000_000_000_000_000) throws -> BucketStore {
    try BucketStore(path: path, options: BucketStore.Options(signEvery: signEvery, clock: tickingClock(from: start)))
}

/// A closed store: namespace "cases/1/findings" with `count` entries (keys f0, f1, ... with every
/// third a new version of f0's key family), and "intel" with three; returns the public key.
@discardableResult
func makeStore(_ path: String, count: Int = 20, signEvery: UInt64 = 4) throws -> AuditPublicKey {
    let store = try openStore(path, signEvery: signEvery)
    for n in 0..<count {
        try store.put(namespace: "cases/1/findings", key: "finding/\(n % 7)", value: Array("value \(n)".utf8),
                      tags: n % 2 == 0 ? ["even"] : ["odd", "t\(n % 3)"])
    }
    for n in 0..<3 { try store.put(namespace: "intel", key: "ioc-\(n)", value: [UInt8(n), 0, 255]) }
    let key = try #require(store.key).publicKey
    try store.close()
    return key
}

let triggerNames = ["blobs_once", "blobs_no_update", "blobs_no_delete", "entries_append_only", "entries_no_update",
                    "entries_no_delete", "tags_append_only", "tags_no_update", "tags_no_delete",
                    "heads_append_only", "heads_no_update", "heads_no_delete"]

/// Someone who can write the file: drops the guards, then runs any SQL.
func tamper(_ path: String, _ sql: String, _ arguments: StatementArguments = []) throws {
    let queue = try DatabaseQueue(path: path)
    try queue.writeWithoutTransaction { db in
        for trigger in triggerNames { try db.execute(sql: "DROP TRIGGER IF EXISTS \(trigger)") }
        try db.execute(sql: sql, arguments: arguments)
    }
    try queue.close()
}

/// The finding of a broken store; records an issue when it verifies.
func finding(_ path: String, key: AuditPublicKey, strict: Bool = false,
             sourceLocation: SourceLocation = #_sourceLocation) throws -> BucketFinding? {
    switch try BucketVerifier.verify(path: path, publicKey: key, strict: strict) {
    case .broken(let finding): return finding
    case .intact(let summary):
        Issue.record("the store verified: \(summary)", sourceLocation: sourceLocation)
        return nil
    }
}

func entryPlace(_ namespace: String, _ index: UInt64) -> BucketFinding.Place { .entry(namespace: namespace, index: index) }
