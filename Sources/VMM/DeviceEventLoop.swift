import Devices
import Glibc
import KVM

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
    private var stopping = false
    /// Wakes the loop when the watch table or the scheduled work changes, or to stop it.
    private let wake: EventFD
    private var thread: NativeThread?

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

    func start() throws(VMMError) {
        thread = try NativeThread(name: "devices") { [self] in loop() }
    }

    /// Ends the loop and waits for the thread.
    func stop() {
        lock.withLock { stopping = true }
        wake.signal()
        thread?.join()
        thread = nil
    }

    private func loop() {
        while true {
            let (fds, handlers, work, stop) = lock.withLock { () -> ([pollfd], [@Sendable (Readiness) -> Void], [@Sendable () -> Void], Bool) in
                var fds = [pollfd(fd: wake.pollDescriptor, events: Int16(POLLIN), revents: 0)]
                var handlers: [@Sendable (Readiness) -> Void] = []
                for (fd, w) in watches {
                    var events: Int16 = 0
                    if w.interest.contains(.readable) { events |= Int16(POLLIN) }
                    if w.interest.contains(.writable) { events |= Int16(POLLOUT) }
                    fds.append(pollfd(fd: fd, events: events, revents: 0))
                    handlers.append(w.handler)
                }
                let work = scheduled
                scheduled.removeAll()
                return (fds, handlers, work, stopping)
            }
            if stop { return }
            for item in work { item() }
            if !work.isEmpty { continue }  // the table may have changed
            var ready = fds
            let n = poll(&ready, nfds_t(ready.count), -1)
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
