import Audit
import Synchronization

/// The bucket store's clock in a recorded session (docs/replay.md): while recording, each time
/// the store reads the clock is kept; in a replay the store is given those times in the same
/// order (the wall clock once they run out), so the agent sees the entry times it saw.
public final class RecordedClock: Sendable {
    private let state: Mutex<(times: [UInt64], next: Int)>
    private let replaying: Bool

    /// A clock that keeps what it tells.
    public static func recording() -> RecordedClock { RecordedClock(times: [], replaying: false) }

    /// A clock that tells `times` again.
    public static func replaying(_ times: [UInt64]) -> RecordedClock { RecordedClock(times: times, replaying: true) }

    private init(times: [UInt64], replaying: Bool) {
        state = Mutex((times, 0))
        self.replaying = replaying
    }

    /// Nanoseconds since the Unix epoch.
    public func now() -> UInt64 {
        state.withLock { state in
            if replaying {
                guard state.next < state.times.count else { return AuditLog.wallClock() }
                defer { state.next += 1 }
                return state.times[state.next]
            }
            let time = AuditLog.wallClock()
            state.times.append(time)
            return time
        }
    }

    /// What a recording clock told, in order.
    public var told: [UInt64] { state.withLock { $0.times } }
}
