import Glibc

/// A mutex and a condition variable on CLOCK_MONOTONIC, both heap-allocated, for waits bounded
/// by a deadline (a door message, room in a queue, a machine's stop).
public final class Monitor: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        mutex.initialize(to: pthread_mutex_t())
        condition.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` with the mutex held.
    public func holding<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Called with the mutex held: waits until `ready` holds or `deadline` (monotonic
    /// nanoseconds; nil: none) passes, or `giveUp` says to (asked every 250 ms). Returns
    /// whether `ready` holds.
    public func wait(until deadline: UInt64?, giveUp: (() -> Bool)? = nil, _ ready: () -> Bool) -> Bool {
        while !ready() {
            if let giveUp, giveUp() { return false }
            let now = MonotonicClock.nanoseconds()
            if let deadline, now >= deadline { return false }
            var wake = deadline ?? .max
            if giveUp != nil { wake = min(wake, now + 250_000_000) }
            if wake == .max {
                pthread_cond_wait(condition, mutex)
            } else {
                var limit = timespec(tv_sec: Int(wake / 1_000_000_000), tv_nsec: Int(wake % 1_000_000_000))
                _ = pthread_cond_timedwait(condition, mutex, &limit)
            }
        }
        return true
    }

    /// Wakes every waiter, to look again at what it waits for. Call with the mutex held.
    public func broadcast() { pthread_cond_broadcast(condition) }
}

/// A one-shot flag: a thread raising it as its last act, or a gate others wait at.
public final class Completion: @unchecked Sendable {
    private let monitor = Monitor()
    private var raised = false

    public init() {}

    public func signal() {
        monitor.holding {
            raised = true
            monitor.broadcast()
        }
    }

    public var isSignalled: Bool { monitor.holding { raised } }

    public func wait() {
        monitor.holding { _ = monitor.wait(until: nil) { raised } }
    }

    /// Waits up to `seconds`; whether the flag was raised.
    public func wait(seconds: Double) -> Bool {
        let deadline = MonotonicClock.deadline(after: seconds)
        return monitor.holding { monitor.wait(until: deadline) { raised } }
    }
}
