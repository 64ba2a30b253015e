import Audit
import Foundation
import Merkle
import POSIX
import Synchronization
import Testing

/// docs/audit.md, "When heads are signed": every N entries, at most T after an entry (by the
/// append that finds it overdue, or by the log's own thread when no append comes), with every
/// lifecycle event, and on close.
@Suite struct SigningCadenceTests {
    /// A monotonic clock the test moves by hand.
    final class ManualClock: Sendable {
        let now = Mutex<UInt64>(1_000_000_000)
        func advance(_ duration: Duration) { now.withLock { $0 += duration.nanosecondsForTest } }
        var read: @Sendable () -> UInt64 { { self.now.withLock { $0 } } }
    }

    /// What the interval thread told, in order, with a wait for the next event.
    final class Events: Sendable {
        let seen = Mutex<[AuditLog.IntervalEvent]>([])
        let monitor = Monitor()
        var hook: @Sendable (AuditLog.IntervalEvent) -> Void {
            { event in self.monitor.holding { self.seen.withLock { $0.append(event) }; self.monitor.broadcast() } }
        }
        /// Waits up to 10 s for `condition` over the events so far.
        func wait(_ condition: @escaping ([AuditLog.IntervalEvent]) -> Bool) -> Bool {
            let deadline = MonotonicClock.deadline(after: 10)
            return monitor.holding { monitor.wait(until: deadline) { condition(seen.withLock { $0 }) } }
        }
        var signed: [SignedTreeHead] { seen.withLock { $0.compactMap { if case .signed(let head) = $0 { head } else { nil } } } }
    }

    @Test func everyLifecycleEventIsSignedInItsOwnTransaction() throws {
        let dir = try TemporaryDirectory()
        let log = try AuditLog(path: dir.file("log.db"), options: AuditLog.Options(signEvery: 1000, signInterval: nil))
        try log.append(sampleEvent(0))
        #expect(log.lastHead == nil)
        let lifecycle: [AuditEvent] = [
            .lifecycle(.policyLoad(source: "p.yaml", sha256: Merkle.emptyRoot)), .lifecycle(.vmStart(vm: "a")),
            .lifecycle(.vmStop(vm: "a", reason: "done")),
        ]
        for event in lifecycle {
            let before = log.lastHead?.treeSize
            try log.append(contentsOf: [sampleEvent(1), sampleEvent(2)])
            #expect(log.lastHead?.treeSize == before)
            try log.append(event)
            #expect(log.lastHead?.treeSize == log.size, "\(event.kind)")
        }
        // In a batch, too.
        try log.append(contentsOf: [sampleEvent(0), .lifecycle(.vmStart(vm: "b")), sampleEvent(1)])
        #expect(log.lastHead?.treeSize == log.size)
        #expect(try log.heads().map(\.treeSize) == [4, 7, 10, 13])
        try log.close()
    }

    /// The interval by a clock the test moves: the append that finds the tail overdue signs it,
    /// and so does `signIfDue` (the interval thread's work) when no append comes.
    @Test func anOverdueTailIsSignedByTheNextAppendOrByTheTimer() throws {
        let dir = try TemporaryDirectory()
        let clock = ManualClock()
        let log = try AuditLog(path: dir.file("log.db"), options: AuditLog.Options(
            signEvery: 1000, signInterval: .seconds(5), intervalThread: false, monotonicClock: clock.read))
        try log.append(sampleEvent(0))
        clock.advance(.milliseconds(4999))
        try log.append(sampleEvent(1))
        #expect(try log.signIfDue() == nil)
        #expect(log.lastHead == nil)
        clock.advance(.milliseconds(1))
        let head = try #require(try log.signIfDue())
        #expect(head.treeSize == 2 && log.lastHead == head)
        #expect(try log.signIfDue() == nil)

        // The interval counts from the first unsigned entry, not the last.
        clock.advance(.seconds(60))
        try log.append(sampleEvent(2))
        clock.advance(.seconds(3))
        try log.append(callEvent(3))
        #expect(log.lastHead?.treeSize == 2)
        clock.advance(.seconds(2))
        try log.append(callEvent(4))
        #expect(log.lastHead?.treeSize == 5)
        try log.close()
    }

    @Test func theLogsOwnThreadSignsATailNoAppendFollows() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let events = Events()
        let log = try AuditLog(path: path, options: AuditLog.Options(
            signEvery: 1000, signInterval: .milliseconds(100), intervalHook: events.hook))
        let start = MonotonicClock.nanoseconds()
        try log.append(sampleEvent(0))
        try log.append(sampleEvent(1))
        #expect(events.wait { !$0.isEmpty })
        let waited = MonotonicClock.nanoseconds() - start
        #expect(waited >= 100_000_000)
        #expect(events.signed.map(\.treeSize) == [2])
        // Committed: a reader sees it while the writer is open.
        #expect(try AuditReader.latestHead(path: path)?.treeSize == 2)
        #expect(log.lastHead?.treeSize == 2)

        // Again for a later tail; nothing to sign, nothing signed.
        try log.append(sampleEvent(2))
        #expect(events.wait { $0.count == 2 })
        usleep(300_000)
        #expect(events.signed.map(\.treeSize) == [2, 3])
        try log.close()
        #expect(events.wait { $0.last == .stopped })
    }

    /// A log dropped without close: the thread does not keep it alive, and its tail is signed.
    @Test func aLogDroppedWithoutCloseIsClosedAndItsThreadEnds() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        let events = Events()
        do {
            let log = try AuditLog(path: path, options: AuditLog.Options(signEvery: 1000, signInterval: .seconds(3600), intervalHook: events.hook))
            try log.append(sampleEvent(0))
        }
        #expect(events.wait { $0 == [.stopped] })
        #expect(try AuditReader.latestHead(path: path)?.treeSize == 1)
    }

    /// A writer that crashed left a tail unsigned: the next writer's thread signs it within T
    /// even if nothing is appended.
    @Test func aResumedUnsignedTailIsDueFromTheOpen() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("log.db")
        try makeLog(at: path, count: 12, signEvery: 5)
        try tamper(path, "DELETE FROM heads WHERE tree_size = 12")
        let events = Events()
        let log = try AuditLog(path: path, options: AuditLog.Options(signEvery: 5, signInterval: .milliseconds(50), intervalHook: events.hook))
        #expect(events.wait { !$0.isEmpty })
        #expect(events.signed.map(\.treeSize) == [12])
        try log.close()
    }

    @Test func withoutAnIntervalNothingIsSignedByTime() throws {
        let dir = try TemporaryDirectory()
        let clock = ManualClock()
        let log = try AuditLog(path: dir.file("log.db"), options: AuditLog.Options(
            signEvery: 1000, signInterval: nil, monotonicClock: clock.read))
        try log.append(sampleEvent(0))
        clock.advance(.seconds(86400))
        try log.append(sampleEvent(1))
        #expect(try log.signIfDue() == nil)
        #expect(log.lastHead == nil)
        try log.close()
        #expect(log.lastHead?.treeSize == 2)
    }
}

extension Duration {
    var nanosecondsForTest: UInt64 {
        UInt64(components.seconds) * 1_000_000_000 + UInt64(components.attoseconds / 1_000_000_000)
    }
}
