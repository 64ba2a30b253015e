import POSIX

/// The thread that signs an audit log's unsigned tail once its first entry has waited
/// `Options.signInterval` with no append to sign it (docs/audit.md, "When heads are signed"),
/// so a writer that stops appending (and then crashes) leaves at most that long unsigned.
///
/// The log arms it with a deadline (CLOCK_MONOTONIC nanoseconds) at its first unsigned entry
/// and disarms it at every head. The thread is started at the first arming, sleeps until the
/// deadline, calls `sign`, and ends once stopped (the log's close) or once `sign` says the log
/// is gone. It holds no reference to the log: a log dropped without `close` still closes.
final class IntervalSigner: @unchecked Sendable {
    /// What the thread did, for tests (`AuditLog.Options.intervalHook`).
    private let hook: (@Sendable (AuditLog.IntervalEvent) -> Void)?
    /// Signs the tail if it is due; false once the log is closed or gone (the thread then ends).
    private let sign: @Sendable () -> Bool
    private let monitor = Monitor()
    // Guarded by `monitor`.
    private var deadline: UInt64?
    private var stopping = false
    private var started = false
    /// Counts changes to `deadline` and `stopping`, so a sleeping thread knows to look again.
    private var generation: UInt64 = 0

    init(hook: (@Sendable (AuditLog.IntervalEvent) -> Void)?, sign: @escaping @Sendable () -> Bool) {
        self.hook = hook
        self.sign = sign
    }

    /// Signs at `deadline` unless disarmed first; starts the thread the first time. False if the
    /// thread cannot be started: the caller signs at once instead. The same deadline again (every
    /// append until the next head) wakes nothing.
    func arm(at deadline: UInt64) -> Bool {
        monitor.holding {
            guard !stopping, self.deadline != deadline else { return true }
            if !started {
                do {
                    try POSIXThread.detach(name: "audit-signer") { [self] in run() }
                } catch {
                    return false
                }
                started = true
            }
            self.deadline = deadline
            generation &+= 1
            monitor.broadcast()
            return true
        }
    }

    func disarm() {
        monitor.holding {
            guard deadline != nil else { return }
            deadline = nil
            generation &+= 1
            monitor.broadcast()
        }
    }

    /// Ends the thread (it may still finish a signing that began, which the closed log refuses).
    func stop() {
        monitor.holding {
            stopping = true
            generation &+= 1
            monitor.broadcast()
        }
    }

    private func run() {
        while due() {
            guard sign() else { break }
        }
        hook?(.stopped)
    }

    /// Sleeps until the deadline passes (true) or the signer is stopped (false).
    private func due() -> Bool {
        monitor.holding {
            while !stopping {
                if let deadline, MonotonicClock.nanoseconds() >= deadline {
                    self.deadline = nil
                    return true
                }
                let seen = generation
                _ = monitor.wait(until: deadline) { stopping || generation != seen }
            }
            return false
        }
    }
}
