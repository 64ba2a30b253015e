import POSIX

/// Holds every thread at `arriveAndWait()` until `parties` threads have arrived, so that they
/// all start their next step together. A thread that failed earlier still arrives.
final class Gate: @unchecked Sendable {
    private let monitor = Monitor()
    private let parties: Int
    private var arrived = 0

    init(parties: Int) { self.parties = parties }

    /// Counts as arrived without waiting (for a party that will never come).
    func arrive() {
        monitor.holding {
            arrived += 1
            if arrived >= parties { monitor.broadcast() }
        }
    }

    func arriveAndWait() {
        monitor.holding {
            arrived += 1
            if arrived >= parties { monitor.broadcast() }
            _ = monitor.wait(until: nil) { arrived >= parties }
        }
    }
}

/// A joinable thread running `body` (512 KiB of stack: the probe's buffers live on the heap).
func probeThread(_ name: String, _ body: @escaping @Sendable () -> Void) throws(ProbeError) -> POSIXThread {
    do { return try POSIXThread(name: name, stackSize: 512 << 10, body) } catch {
        throw .system(error.call, errno: error.errno)
    }
}
