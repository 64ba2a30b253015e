import POSIX

/// The serial console's output, bounded per VM in size and in rate: a guest that writes without
/// end must not fill the host's disk (the console log) or keep the host's terminal busy. Bytes
/// over a bound are dropped, never queued, and the reader is told where with one marker line:
///
/// - rate: a token bucket, `bytesPerSecond` sustained and `burstBytes` at once (a whole boot log
///   fits in the burst). Once output is dropped, it resumes only when a quarter of the burst
///   has come back, so a guest writing flat out costs at most one marker a second or so;
/// - size: after `totalBytes` (markers included) nothing more is written.
public final class BoundedConsole: SerialOutput, @unchecked Sendable {
    public struct Limits: Sendable, Equatable {
        public var totalBytes: Int
        public var bytesPerSecond: Int
        public var burstBytes: Int

        public init(totalBytes: Int, bytesPerSecond: Int, burstBytes: Int) {
            self.totalBytes = totalBytes
            self.bytesPerSecond = max(bytesPerSecond, 1)
            self.burstBytes = max(burstBytes, 1)
        }

        /// 64 MiB in all, 256 KiB/s with bursts of 1 MiB.
        public static let standard = Limits(totalBytes: 64 << 20, bytesPerSecond: 256 << 10, burstBytes: 1 << 20)
    }

    public let limits: Limits
    private let inner: any SerialOutput
    private let clock: @Sendable () -> UInt64
    private let lock = Lock()
    private var tokens: Double
    private var refilledAt: UInt64
    private var written = 0
    private var dropping = false
    private var droppedSinceMarker = 0
    private var stopped = false
    private var dropped = 0

    /// Bytes the guest wrote that were not passed on.
    public var droppedBytes: Int { lock.withLock { dropped } }

    /// `clock` gives monotonic nanoseconds (tests pass their own).
    public init(_ inner: any SerialOutput, limits: Limits = .standard,
                clock: @escaping @Sendable () -> UInt64 = { MonotonicClock.nanoseconds() }) {
        self.inner = inner
        self.limits = limits
        self.clock = clock
        tokens = Double(limits.burstBytes)
        refilledAt = clock()
    }

    public func write(_ bytes: [UInt8]) {
        lock.withLock {
            guard !stopped else {
                dropped += bytes.count
                return
            }
            refill()
            if dropping {
                guard tokens >= Double(limits.burstBytes) / 4 else { return drop(bytes.count) }
                dropping = false
                pass(Array("\n[momin-vmm: \(droppedSinceMarker) console bytes dropped: over \(limits.bytesPerSecond) bytes/s]\n".utf8))
                droppedSinceMarker = 0
            }
            guard tokens >= Double(bytes.count) else {
                dropping = true
                return drop(bytes.count)
            }
            tokens -= Double(bytes.count)
            pass(bytes)
        }
    }

    /// Writes `bytes`, or as much as the size bound leaves and then the last marker.
    private func pass(_ bytes: [UInt8]) {
        let stop = Array("\n[momin-vmm: console output stops here: \(limits.totalBytes) bytes written]\n".utf8)
        let room = limits.totalBytes - stop.count - written
        guard bytes.count > room else {
            written += bytes.count
            inner.write(bytes)
            return
        }
        if room > 0 { inner.write(Array(bytes.prefix(room))) }
        inner.write(stop)
        written = limits.totalBytes
        dropped += bytes.count - max(room, 0)
        stopped = true
    }

    private func drop(_ count: Int) {
        dropped += count
        droppedSinceMarker += count
    }

    private func refill() {
        let now = clock()
        guard now > refilledAt else { return }
        let earned = Double(now - refilledAt) / 1e9 * Double(limits.bytesPerSecond)
        tokens = min(Double(limits.burstBytes), tokens + earned)
        refilledAt = now
    }
}
