import Devices
import Foundation
import Glibc
import Testing
@testable import VMM

/// The device thread's loop: descriptors, handed-over work and timers, all on its one thread.
@Suite struct DeviceEventLoopTests {
    /// Collects what ran, from the loop's thread, for the test's thread to wait on.
    final class Record: @unchecked Sendable {
        private let condition = NSCondition()
        private var items: [String] = []

        func add(_ item: String) {
            condition.lock()
            items.append(item)
            condition.broadcast()
            condition.unlock()
        }

        /// Waits up to `seconds` for `count` items.
        func wait(for count: Int, seconds: Double = 5) -> [String] {
            let deadline = Date(timeIntervalSinceNow: seconds)
            condition.lock()
            defer { condition.unlock() }
            while items.count < count, condition.wait(until: deadline) {}
            return items
        }
    }

    /// A pipe whose read end `loop` watches, adding "readable" to `record` for each byte.
    static func watchedPipe(_ loop: DeviceEventLoop, _ record: Record) throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        let readEnd = fds[0]
        try loop.watch(readEnd, for: .readable) { _ in
            var byte: UInt8 = 0
            _ = read(readEnd, &byte, 1)
            record.add("readable")
        }
        return (fds[0], fds[1])
    }

    @Test func timersFireInDeadlineOrderAndNotBefore() throws {
        let loop = try DeviceEventLoop()
        try loop.start()
        defer { loop.stop() }
        let record = Record()
        let start = Date()
        loop.schedule(after: 0.3) { record.add("late \(Date().timeIntervalSince(start))") }
        loop.schedule(after: 0.1) { record.add("early \(Date().timeIntervalSince(start))") }
        loop.schedule { record.add("now") }
        let items = record.wait(for: 3)
        try #require(items.count == 3, "ran: \(items)")
        #expect(items[0] == "now")
        #expect(items[1].hasPrefix("early "))
        #expect(items[2].hasPrefix("late "))
        let early = Double(items[1].dropFirst(6)) ?? 0
        let late = Double(items[2].dropFirst(5)) ?? 0
        #expect(early >= 0.1)
        #expect(late >= 0.3)
    }

    /// A timer must wake a loop that sleeps in poll(2) with nothing else to do.
    @Test func aTimerWakesAnIdleLoopWatchingADescriptor() throws {
        let loop = try DeviceEventLoop()
        let record = Record()
        let (readEnd, writeEnd) = try Self.watchedPipe(loop, record)
        defer { close(readEnd); close(writeEnd) }
        try loop.start()
        defer { loop.stop() }
        loop.schedule(after: 0.2) {
            var byte: UInt8 = 1
            _ = write(writeEnd, &byte, 1)
            record.add("timer")
        }
        #expect(record.wait(for: 2) == ["timer", "readable"])
    }

    /// Work that schedules more work for ever (a device taking a busy queue a queue's worth at a
    /// time) still lets the loop serve its descriptors between rounds.
    @Test func workThatKeepsSchedulingMoreDoesNotStarveDescriptors() throws {
        let loop = try DeviceEventLoop()
        let record = Record()
        let (readEnd, writeEnd) = try Self.watchedPipe(loop, record)
        defer { close(readEnd); close(writeEnd) }
        final class Busy: @unchecked Sendable {
            var stopped = false
            var rounds = 0
        }
        let busy = Busy()
        @Sendable func spin() {
            busy.rounds += 1
            if !busy.stopped { loop.schedule(spin) }
        }
        try loop.start()
        defer {
            loop.schedule { busy.stopped = true }
            loop.stop()
        }
        loop.schedule(spin)
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
        #expect(record.wait(for: 1) == ["readable"])
    }
}
