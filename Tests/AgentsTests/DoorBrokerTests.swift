@testable import Agents
import Foundation
import Testing

/// The broker's queues: order, bounds, back-pressure, and what a stopped agent does to them.
@Suite struct DoorBrokerTests {
    func broker(_ agents: String...) -> DoorBroker {
        let broker = DoorBroker()
        for agent in agents { broker.open(agent: agent) }
        return broker
    }

    /// A send from "a" to "b" on its own thread, waiting up to 10 s for room; the semaphore is
    /// signalled when it returns, with its outcome in the box.
    static func sendInBackground(_ doors: DoorBroker, door: String, bytes: [UInt8], depth: Int)
        -> (DispatchSemaphore, Box<Result<UInt64, DoorFailure>>) {
        let sent = DispatchSemaphore(value: 0)
        let outcome = Box<Result<UInt64, DoorFailure>>()
        Thread.detachNewThread {
            outcome.value = Result { () throws(DoorFailure) in
                try doors.send(door: door, from: "a", to: "b", bytes: bytes, depth: depth, timeoutMilliseconds: 10_000)
            }
            sent.signal()
        }
        return (sent, outcome)
    }

    @Test func messagesArriveInTheOrderSentWithRisingSequenceNumbers() throws {
        let doors = broker("a", "b")
        for index in 0..<5 { _ = try doors.send(door: "d", from: "a", to: "b", bytes: [UInt8(index)], depth: 8, timeoutMilliseconds: 0) }
        var got: [DoorBroker.Message] = []
        for _ in 0..<5 { got.append(try doors.receive(door: "d", by: "b", timeoutMilliseconds: 0)) }
        #expect(got.map(\.bytes) == [[0], [1], [2], [3], [4]])
        #expect(got.map(\.sequence) == [1, 2, 3, 4, 5])
        #expect(got.allSatisfy { $0.from == "a" && $0.to == "b" && $0.door == "d" })
    }

    @Test func queuesAreSeparatePerDoorAndPerRecipient() throws {
        let doors = broker("a", "b", "c")
        _ = try doors.send(door: "x", from: "a", to: "b", bytes: [1], depth: 4, timeoutMilliseconds: 0)
        _ = try doors.send(door: "y", from: "a", to: "b", bytes: [2], depth: 4, timeoutMilliseconds: 0)
        _ = try doors.send(door: "x", from: "a", to: "c", bytes: [3], depth: 4, timeoutMilliseconds: 0)
        #expect(try doors.receive(door: "y", by: "b", timeoutMilliseconds: 0).bytes == [2])
        #expect(try doors.receive(door: "x", by: "c", timeoutMilliseconds: 0).bytes == [3])
        #expect(try doors.receive(door: "x", by: "b", timeoutMilliseconds: 0).bytes == [1])
        #expect(throws: DoorFailure.nothingArrived(door: "x", milliseconds: 0)) {
            try doors.receive(door: "x", by: "b", timeoutMilliseconds: 0)
        }
    }

    @Test func aFullQueueRefusesAfterTheTimeoutAndNothingIsBuffered() throws {
        let doors = broker("a", "b")
        for index in 0..<3 { _ = try doors.send(door: "d", from: "a", to: "b", bytes: [UInt8(index)], depth: 3, timeoutMilliseconds: 0) }
        let start = Date()
        #expect(throws: DoorFailure.queueFull(door: "d", to: "b", depth: 3)) {
            try doors.send(door: "d", from: "a", to: "b", bytes: [9], depth: 3, timeoutMilliseconds: 100)
        }
        #expect(Date().timeIntervalSince(start) >= 0.09)
        #expect(doors.queued(door: "d", for: "b") == 3)
    }

    @Test func aBlockedSenderGoesOnOnceTheRecipientTakesAMessage() throws {
        let doors = broker("a", "b")
        _ = try doors.send(door: "d", from: "a", to: "b", bytes: [1], depth: 1, timeoutMilliseconds: 0)
        let (sent, outcome) = Self.sendInBackground(doors, door: "d", bytes: [2], depth: 1)
        // The sender is waiting for room: nothing more is queued.
        #expect(sent.wait(timeout: .now() + 0.2) == .timedOut)
        #expect(doors.queued(door: "d", for: "b") == 1)
        #expect(try doors.receive(door: "d", by: "b", timeoutMilliseconds: 0).bytes == [1])
        #expect(sent.wait(timeout: .now() + 5) == .success)
        #expect(try outcome.value?.get() == 2)
        #expect(try doors.receive(door: "d", by: "b", timeoutMilliseconds: 0).bytes == [2])
    }

    @Test func aWaitingReceiverWakesForAMessage() throws {
        let doors = broker("a", "b")
        let got = DispatchSemaphore(value: 0)
        let outcome = Box<Result<DoorBroker.Message, DoorFailure>>()
        Thread.detachNewThread {
            outcome.value = Result { () throws(DoorFailure) in try doors.receive(door: "d", by: "b", timeoutMilliseconds: 10_000) }
            got.signal()
        }
        #expect(got.wait(timeout: .now() + 0.1) == .timedOut)
        _ = try doors.send(door: "d", from: "a", to: "b", bytes: [7], depth: 1, timeoutMilliseconds: 0)
        #expect(got.wait(timeout: .now() + 5) == .success)
        #expect(try outcome.value?.get().bytes == [7])
    }

    @Test func closingAnAgentDropsItsQueueAndFailsItsWaiters() throws {
        let doors = broker("a", "b")
        _ = try doors.send(door: "d", from: "a", to: "b", bytes: [1], depth: 1, timeoutMilliseconds: 0)
        let done = DispatchSemaphore(value: 0)
        let outcome = Box<Result<UInt64, DoorFailure>>()
        Thread.detachNewThread {
            outcome.value = Result { () throws(DoorFailure) in
                try doors.send(door: "d", from: "a", to: "b", bytes: [2], depth: 1, timeoutMilliseconds: 10_000)
            }
            done.signal()
        }
        #expect(done.wait(timeout: .now() + 0.1) == .timedOut)
        doors.close(agent: "b")
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(throws: DoorFailure.recipientGone("b")) { try outcome.value?.get() }
        #expect(doors.queued(door: "d", for: "b") == 0)
        #expect(throws: DoorFailure.recipientGone("b")) {
            try doors.send(door: "d", from: "a", to: "b", bytes: [3], depth: 1, timeoutMilliseconds: 0)
        }
        #expect(throws: DoorFailure.recipientGone("nobody")) {
            try doors.send(door: "d", from: "a", to: "nobody", bytes: [3], depth: 1, timeoutMilliseconds: 0)
        }
    }
}

extension DoorBrokerTests {
    @Test func aReceiverThatGoesAwayTakesNothingAndAMessagePutBackIsNextInLine() throws {
        let doors = broker("a", "b")
        let gone = Box<Bool>()
        let outcome = Box<Result<DoorBroker.Message, DoorFailure>>()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            outcome.value = Result { () throws(DoorFailure) in
                try doors.receive(door: "d", by: "b", timeoutMilliseconds: 10_000, abandoned: { gone.value == true })
            }
            done.signal()
        }
        gone.value = true
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(throws: DoorFailure.abandoned) { try outcome.value?.get() }
        _ = try doors.send(door: "d", from: "a", to: "b", bytes: [1], depth: 4, timeoutMilliseconds: 0)
        _ = try doors.send(door: "d", from: "a", to: "b", bytes: [2], depth: 4, timeoutMilliseconds: 0)
        let first = try doors.receive(door: "d", by: "b", timeoutMilliseconds: 0)
        doors.putBack(first)
        #expect(try doors.receive(door: "d", by: "b", timeoutMilliseconds: 0) == first)
        #expect(try doors.receive(door: "d", by: "b", timeoutMilliseconds: 0).bytes == [2])
    }
}

/// What one recipient may have waiting over all its doors: a sender that uses a new door name
/// for every message (door rules are globs) still meets the recipient's bounds.
extension DoorBrokerTests {
    @Test func everythingWaitingForARecipientIsBoundedInBytesOverAllItsDoors() throws {
        let doors = DoorBroker(maxQueuedBytes: 10_000, maxQueuedMessages: 1_000)
        doors.open(agent: "a")
        doors.open(agent: "b")
        doors.open(agent: "c")
        for index in 0..<10 {
            _ = try doors.send(door: "d\(index)", from: "a", to: "b", bytes: [UInt8](repeating: 1, count: 1_000), depth: 16, timeoutMilliseconds: 0)
        }
        #expect(doors.queued(for: "b") == (bytes: 10_000, messages: 10))
        #expect(throws: DoorFailure.recipientFull(to: "b", bytes: 10_000, messages: 1_000)) {
            try doors.send(door: "fresh", from: "a", to: "b", bytes: [1], depth: 16, timeoutMilliseconds: 50)
        }
        // Another recipient has room of its own.
        _ = try doors.send(door: "fresh", from: "a", to: "c", bytes: [1], depth: 16, timeoutMilliseconds: 0)
        // Taking one makes room for one more; putting it back fills it again.
        let taken = try doors.receive(door: "d3", by: "b", timeoutMilliseconds: 0)
        #expect(doors.queued(for: "b") == (bytes: 9_000, messages: 9))
        doors.putBack(taken)
        #expect(doors.queued(for: "b") == (bytes: 10_000, messages: 10))
        _ = try doors.receive(door: "d3", by: "b", timeoutMilliseconds: 0)
        _ = try doors.send(door: "fresh", from: "a", to: "b", bytes: [UInt8](repeating: 2, count: 1_000), depth: 16, timeoutMilliseconds: 0)
        // A stopped recipient holds nothing.
        doors.close(agent: "b")
        #expect(doors.queued(for: "b") == (bytes: 0, messages: 0))
    }

    @Test func emptyMessagesAreBoundedInNumberAndSequenceNumbersRiseOverAllDoors() throws {
        let doors = DoorBroker(maxQueuedBytes: 1 << 20, maxQueuedMessages: 3)
        doors.open(agent: "a")
        doors.open(agent: "b")
        var numbers: [UInt64] = []
        for door in ["x", "y", "z"] { numbers.append(try doors.send(door: door, from: "a", to: "b", bytes: [], depth: 16, timeoutMilliseconds: 0)) }
        #expect(numbers == [1, 2, 3])
        #expect(throws: DoorFailure.recipientFull(to: "b", bytes: 1 << 20, messages: 3)) {
            try doors.send(door: "w", from: "a", to: "b", bytes: [], depth: 16, timeoutMilliseconds: 0)
        }
        #expect(try doors.receive(door: "y", by: "b", timeoutMilliseconds: 0).sequence == 2)
        #expect(try doors.send(door: "x", from: "a", to: "b", bytes: [], depth: 16, timeoutMilliseconds: 0) == 4)
    }

    @Test func aSenderWaitingForTheRecipientsRoomGoesOnWhenAnyOfItsDoorsIsRead() throws {
        let doors = DoorBroker(maxQueuedBytes: 100, maxQueuedMessages: 100)
        doors.open(agent: "a")
        doors.open(agent: "b")
        _ = try doors.send(door: "x", from: "a", to: "b", bytes: [UInt8](repeating: 0, count: 100), depth: 16, timeoutMilliseconds: 0)
        let (sent, outcome) = Self.sendInBackground(doors, door: "y", bytes: [1], depth: 16)
        #expect(sent.wait(timeout: .now() + 0.2) == .timedOut)
        _ = try doors.receive(door: "x", by: "b", timeoutMilliseconds: 0)
        #expect(sent.wait(timeout: .now() + 5) == .success)
        #expect(try outcome.value?.get() == 2)
    }
}

/// A value one thread sets and another reads after a semaphore.
final class Box<T>: @unchecked Sendable {
    var value: T?
}
