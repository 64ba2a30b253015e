import Devices
import Glibc
import KVM
import POSIX

/// The device thread: one poll(2) loop over the ioeventfds that KVM signals when the guest
/// writes a queue's notify register, and over whatever host descriptors devices watch (vsock's
/// Unix sockets). Handlers run one at a time on this thread, off the vCPU threads.
final class DeviceEventLoop: EventRegistry, @unchecked Sendable {
    private struct Watch {
        var interest: Readiness
        let handler: @Sendable (Readiness) -> Void
    }

    private let lock = Lock()
    private var watches: [Int32: Watch] = [:]
    private var scheduled: [@Sendable () -> Void] = []
    /// Timers by CLOCK_MONOTONIC deadline (nanoseconds), in no particular order: a VM has a
    /// handful at a time (one per vsock connection being opened), so a scan is cheapest.
    private var timers: [(deadline: UInt64, work: @Sendable () -> Void)] = []
    private var stopping = false
    /// Wakes the loop when the watch table or the scheduled work changes, or to stop it.
    private let wake: EventFD
    private var thread: POSIXThread?

    init() throws(VMMError) {
        do { wake = try EventFD(nonBlocking: true) } catch { throw .kvm(error) }
    }

    /// Runs `handler` on the loop whenever `event` is signalled (an ioeventfd or irqfd-style doorbell).
    func watch(_ event: EventFD, handler: @escaping @Sendable () -> Void) {
        try? watch(event.pollDescriptor, for: .readable) { _ in
            _ = event.drain()
            handler()
        }
    }

    func watch(_ fd: Int32, for interest: Readiness, handler: @escaping @Sendable (Readiness) -> Void) throws {
        lock.withLock { watches[fd] = Watch(interest: interest, handler: handler) }
        wake.signal()
    }

    func change(_ fd: Int32, to interest: Readiness) throws {
        lock.withLock { watches[fd]?.interest = interest }
        wake.signal()
    }

    func unwatch(_ fd: Int32) {
        lock.withLock { _ = watches.removeValue(forKey: fd) }
        wake.signal()
    }

    func schedule(_ work: @escaping @Sendable () -> Void) {
        lock.withLock { scheduled.append(work) }
        wake.signal()
    }

    func schedule(after seconds: Double, _ work: @escaping @Sendable () -> Void) {
        let deadline = Self.now() &+ UInt64(max(seconds, 0) * 1e9)
        lock.withLock { timers.append((deadline, work)) }
        wake.signal()
    }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Starts the loop's thread. `prologue` runs first on it (the thread's seccomp filter); if it
    /// returns false the loop does not run.
    func start(prologue: @escaping @Sendable () -> Bool = { true }) throws(VMMError) {
        thread = try POSIXThread.vmm("devices") { [self] in
            guard prologue() else { return }
            loop()
        }
    }

    /// Ends the loop and waits for the thread.
    func stop() {
        lock.withLock { stopping = true }
        wake.signal()
        thread?.join()
        thread = nil
    }

    private func loop() {
        // Rounds of handed-over work and rounds of poll(2) take turns: work that keeps
        // scheduling more (a device taking a busy queue a queue's worth at a time) cannot keep
        // the descriptors from being served.
        var justWorked = false
        while true {
            let (fds, handlers, work, stop, nextDeadline, moreWork) = lock.withLock { () -> ([pollfd], [@Sendable (Readiness) -> Void], [@Sendable () -> Void], Bool, UInt64?, Bool) in
                var fds = [pollfd(fd: wake.pollDescriptor, events: Int16(POLLIN), revents: 0)]
                var handlers: [@Sendable (Readiness) -> Void] = []
                for (fd, w) in watches {
                    var events: Int16 = 0
                    if w.interest.contains(.readable) { events |= Int16(POLLIN) }
                    if w.interest.contains(.writable) { events |= Int16(POLLOUT) }
                    fds.append(pollfd(fd: fd, events: events, revents: 0))
                    handlers.append(w.handler)
                }
                // Due timers run with the scheduled work, before the next poll.
                var work: [@Sendable () -> Void] = []
                if !justWorked {
                    let now = Self.now()
                    work = scheduled
                    scheduled.removeAll()
                    work += timers.filter { $0.deadline <= now }.map(\.work)
                    timers.removeAll { $0.deadline <= now }
                }
                return (fds, handlers, work, stopping, timers.map(\.deadline).min(), !scheduled.isEmpty)
            }
            if stop { return }
            if !work.isEmpty {
                for item in work { item() }
                justWorked = true
                continue  // the table may have changed
            }
            justWorked = false
            var ready = fds
            // Sleep until the earliest timer at most (rounded up to the next millisecond); not
            // at all when work is waiting for its turn.
            let timeout = moreWork ? 0 : nextDeadline.map { Int32(min(($0 &- min($0, Self.now()) + 999_999) / 1_000_000, UInt64(Int32.max))) } ?? -1
            let n = poll(&ready, nfds_t(ready.count), timeout)
            if n < 0 {
                if errno == EINTR { continue }
                return  // EFAULT/EINVAL would be bugs; stop rather than spin.
            }
            if ready[0].revents != 0 { _ = wake.drain() }
            for i in 1..<ready.count where ready[i].revents != 0 {
                // A handler may have unwatched a later descriptor in this same round.
                let stillWatched = lock.withLock { watches[ready[i].fd] != nil }
                guard stillWatched else { continue }
                var readiness: Readiness = []
                let r = Int32(ready[i].revents)
                if r & Int32(POLLIN) != 0 { readiness.insert(.readable) }
                if r & Int32(POLLOUT) != 0 { readiness.insert(.writable) }
                if r & Int32(POLLHUP | POLLERR | POLLNVAL) != 0 { readiness.insert(.closed) }
                handlers[i - 1](readiness)
            }
        }
    }
}
