import Glibc
import POSIX

/// Bounds a whole probe run: after `seconds`, prints what every tracked step was doing and
/// exits 1, so a wedged guest or VMM fails a check with a reason instead of stalling the
/// caller (the rig tier has one time limit for every scenario together).
enum Watchdog {
    /// Steps in progress, by name: what each one last said it was doing.
    static let board = ProgressBoard()

    static func start(seconds: Double) throws(ProbeError) {
        _ = try probeThread("watchdog") {
            let deadline = MonotonicClock.seconds() + seconds
            while MonotonicClock.seconds() < deadline { usleep(100_000) }
            var lines = "momin-probe: gave up after \(seconds) s (--deadline); still in progress:\n"
            let steps = board.snapshot()
            if steps.isEmpty { lines += "  (no step registered)\n" }
            for (name, doing) in steps { lines += "  \(name): \(doing)\n" }
            writeError(lines)
            exit(1)
        }
    }
}

/// What each concurrent step is doing, for the watchdog's last words.
final class ProgressBoard: @unchecked Sendable {
    private let lock = Lock()
    private var steps: [String: String] = [:]

    func set(_ name: String, _ doing: String) { lock.withLock { steps[name] = doing } }
    func done(_ name: String) { _ = lock.withLock { steps.removeValue(forKey: name) } }

    func snapshot() -> [(String, String)] {
        // Shorter names first, so that "client 9" comes before "client 10".
        lock.withLock { steps.sorted { ($0.key.count, $0.key) < ($1.key.count, $1.key) } }
    }
}
