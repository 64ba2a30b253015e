/// Agent-to-agent messages ("doors"), held by the host: agents share no memory, and every
/// message goes through here after both sides' policies have allowed it (`AgentTree`).
///
/// Each (door, recipient) pair has its own first-in first-out queue, bounded by the depth the
/// recipient's policy gives, and everything waiting for one recipient, over all its doors, is
/// bounded in bytes and in messages (door names are globs, so an agent can be sent to on any
/// number of them). A sender waits for room up to its timeout (back-pressure) and is refused
/// after it, so nothing buffers without bound. Messages from one sender on one door arrive in
/// the order it sent them; each carries a sequence number, rising across the whole tree.
import POSIX

public final class DoorBroker: @unchecked Sendable {
    public struct Message: Sendable, Equatable {
        public let door: String
        public let from: String
        public let to: String
        public let bytes: [UInt8]
        /// 1, 2, ... in the order messages were queued, over all doors: a later message on a
        /// door carries a larger number. One counter, so no table grows with the door names used.
        public let sequence: UInt64
    }

    private struct Key: Hashable {
        let door: String
        let recipient: String
    }

    /// What waits for one recipient, over all its doors.
    private struct Held {
        var bytes = 0
        var messages = 0
    }

    /// The most bytes and messages that may wait for one recipient over all its doors.
    public let maxQueuedBytes: Int
    public let maxQueuedMessages: Int
    public static let defaultMaxQueuedBytes = 64 << 20
    public static let defaultMaxQueuedMessages = 4096

    private let monitor = Monitor()
    private var queues: [Key: [Message]] = [:]
    private var held: [String: Held] = [:]
    private var live: Set<String> = []
    private var lastSequence: UInt64 = 0

    public init(maxQueuedBytes: Int = DoorBroker.defaultMaxQueuedBytes, maxQueuedMessages: Int = DoorBroker.defaultMaxQueuedMessages) {
        self.maxQueuedBytes = maxQueuedBytes
        self.maxQueuedMessages = maxQueuedMessages
    }

    /// From now on `agent` may be sent to and may receive.
    public func open(agent: String) {
        monitor.holding { _ = live.insert(agent) }
    }

    /// `agent` has stopped: what was queued for it is dropped, and senders waiting for room in
    /// its queues and its own waiting receives fail.
    public func close(agent: String) {
        monitor.holding {
            live.remove(agent)
            for key in queues.keys where key.recipient == agent { queues[key] = nil }
            held[agent] = nil
            monitor.broadcast()
        }
    }

    /// Queues `bytes` for `to` on `door`, waiting up to `timeoutMilliseconds` while its queue
    /// holds `depth` messages or `to` has all the bytes or messages it may have waiting.
    /// Returns the message's sequence number.
    /// `abandoned` ends the wait early (the caller has gone), with nothing queued.
    public func send(door: String, from: String, to: String, bytes: [UInt8], depth: Int,
                     timeoutMilliseconds: UInt32, abandoned: (() -> Bool)? = nil) throws(DoorFailure) -> UInt64 {
        let key = Key(door: door, recipient: to)
        let deadline = MonotonicClock.deadline(milliseconds: timeoutMilliseconds)
        return try monitor.holding { () throws(DoorFailure) -> UInt64 in
            guard live.contains(to) else { throw .recipientGone(to) }
            let room = monitor.wait(until: deadline, giveUp: abandoned) {
                !live.contains(to) || (queues[key, default: []].count < depth && fits(bytes.count, for: to))
            }
            guard live.contains(to) else { throw .recipientGone(to) }
            if !room, abandoned?() == true { throw .abandoned }
            guard room else {
                if queues[key, default: []].count >= depth { throw .queueFull(door: door, to: to, depth: depth) }
                throw .recipientFull(to: to, bytes: maxQueuedBytes, messages: maxQueuedMessages)
            }
            lastSequence += 1
            queues[key, default: []].append(Message(door: door, from: from, to: to, bytes: bytes, sequence: lastSequence))
            held[to, default: Held()].bytes += bytes.count
            held[to, default: Held()].messages += 1
            monitor.broadcast()
            return lastSequence
        }
    }

    /// Whether `count` more bytes, in one more message, stay within what `agent` may have waiting.
    private func fits(_ count: Int, for agent: String) -> Bool {
        let now = held[agent] ?? Held()
        return now.messages < maxQueuedMessages && now.bytes + count <= maxQueuedBytes
    }

    /// The oldest message for `agent` on `door`, waiting up to `timeoutMilliseconds` for one;
    /// `abandoned` ends the wait early (the caller has gone), with nothing taken.
    public func receive(door: String, by agent: String, timeoutMilliseconds: UInt32,
                        abandoned: (() -> Bool)? = nil) throws(DoorFailure) -> Message {
        let key = Key(door: door, recipient: agent)
        let deadline = MonotonicClock.deadline(milliseconds: timeoutMilliseconds)
        return try monitor.holding { () throws(DoorFailure) -> Message in
            guard live.contains(agent) else { throw .recipientGone(agent) }
            let arrived = monitor.wait(until: deadline, giveUp: abandoned) { !live.contains(agent) || !(queues[key]?.isEmpty ?? true) }
            guard live.contains(agent) else { throw .recipientGone(agent) }
            if !arrived, abandoned?() == true { throw .abandoned }
            guard arrived, var queue = queues[key], !queue.isEmpty else { throw .nothingArrived(door: door, milliseconds: timeoutMilliseconds) }
            let message = queue.removeFirst()
            queues[key] = queue.isEmpty ? nil : queue
            held[agent]?.bytes -= message.bytes.count
            held[agent]?.messages -= 1
            monitor.broadcast()  // a sender may be waiting for this room
            return message
        }
    }

    /// Puts a message taken by `receive` back at the front of its queue: its reply never
    /// reached the agent. Dropped if the agent has stopped meanwhile. It was within the bounds
    /// when sent, and goes back even if senders have filled its room since.
    public func putBack(_ message: Message) {
        monitor.holding {
            guard live.contains(message.to) else { return }
            queues[Key(door: message.door, recipient: message.to), default: []].insert(message, at: 0)
            held[message.to, default: Held()].bytes += message.bytes.count
            held[message.to, default: Held()].messages += 1
            monitor.broadcast()
        }
    }

    /// Messages waiting for `agent` on `door`.
    public func queued(door: String, for agent: String) -> Int {
        monitor.holding { queues[Key(door: door, recipient: agent)]?.count ?? 0 }
    }

    /// Bytes and messages waiting for `agent` over all its doors.
    public func queued(for agent: String) -> (bytes: Int, messages: Int) {
        monitor.holding {
            let now = held[agent] ?? Held()
            return (now.bytes, now.messages)
        }
    }
}

public enum DoorFailure: Error, Equatable, CustomStringConvertible {
    case recipientGone(String)
    case queueFull(door: String, to: String, depth: Int)
    /// Everything waiting for `to` over all its doors reached a bound for the whole timeout.
    case recipientFull(to: String, bytes: Int, messages: Int)
    case nothingArrived(door: String, milliseconds: UInt32)
    /// The caller went away while it waited.
    case abandoned

    public var description: String {
        switch self {
        case .recipientGone(let agent): "agent \(agent) is not running"
        case .queueFull(let door, let to, let depth):
            "door \(door): \(to)'s queue stayed full (\(depth) message\(depth == 1 ? "" : "s") waiting) for the whole timeout"
        case .recipientFull(let to, let bytes, let messages):
            "\(to) already has as much waiting as it may over all its doors (at most \(bytes) bytes and \(messages) messages) for the whole timeout"
        case .nothingArrived(let door, let milliseconds): "door \(door): no message arrived in \(milliseconds) ms"
        case .abandoned: "the caller went away while it waited"
        }
    }
}
