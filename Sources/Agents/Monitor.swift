import Glibc

/// A mutex and a condition variable on CLOCK_MONOTONIC, for the waits hands calls make (a door
/// message, room in a queue, a sub-agent's end), each bounded by a deadline.
final class Monitor: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
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

    func holding<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Called with the mutex held: waits until `ready` holds or `deadline` (monotonic
    /// nanoseconds; nil: none) passes, or `giveUp` says to (asked every 250 ms). Returns
    /// whether `ready` holds.
    func wait(until deadline: UInt64?, giveUp: (() -> Bool)? = nil, _ ready: () -> Bool) -> Bool {
        while !ready() {
            if let giveUp, giveUp() { return false }
            let now = Self.now()
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
    func broadcast() { pthread_cond_broadcast(condition) }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// The deadline `milliseconds` from now.
    static func deadline(milliseconds: UInt32) -> UInt64 { now() + UInt64(milliseconds) * 1_000_000 }
}
