/// A device's I/O limits (after Firecracker's `RateLimiter`): one bucket for bytes, one for
/// operations, either optional. A request goes through only when both can pay for it, and then
/// pays both; otherwise it pays nothing and the caller waits `nanosecondsUntil` before trying again.
/// Pure, like `TokenBucket`: the time is a parameter.
public struct RateLimiter: Equatable, Sendable {
    /// One limit as configured: a sustained rate per second, and a burst (the bucket's size).
    public struct Limit: Equatable, Sendable {
        public var perSecond: UInt64
        public var burst: UInt64

        public init(perSecond: UInt64, burst: UInt64? = nil) {
            self.perSecond = perSecond
            self.burst = burst ?? perSecond
        }
    }

    public private(set) var bytes: TokenBucket?
    public private(set) var operations: TokenBucket?
    /// Requests that had to wait, for the state dump.
    public private(set) var throttled = 0

    /// Full buckets at `now`; a nil (or zero) limit is no limit.
    public init(bytes: Limit?, operations: Limit?, now: UInt64) {
        self.bytes = bytes.flatMap { TokenBucket(capacity: $0.burst, refillPerSecond: $0.perSecond, now: now) }
        self.operations = operations.flatMap { TokenBucket(capacity: $0.burst, refillPerSecond: $0.perSecond, now: now) }
    }

    /// No limit at all.
    public static let unlimited = RateLimiter(bytes: nil, operations: nil, now: 0)

    public var isLimited: Bool { bytes != nil || operations != nil }

    /// Takes `byteCount` bytes and one operation if both buckets allow it at `now`.
    public mutating func take(bytes byteCount: UInt64, now: UInt64) -> Bool {
        self.bytes?.refill(now: now)
        operations?.refill(now: now)
        guard self.bytes?.canTake(byteCount) ?? true, operations?.canTake(1) ?? true else {
            throttled += 1
            return false
        }
        _ = self.bytes?.take(byteCount)
        _ = operations?.take(1)
        return true
    }

    /// Nanoseconds until a request of `byteCount` bytes can go through (0 if it can now):
    /// the longer of the two buckets' waits. Call after a `take` that failed at about the same time.
    public func nanosecondsUntil(bytes byteCount: UInt64) -> UInt64 {
        max(bytes?.nanosecondsUntil(byteCount) ?? 0, operations?.nanosecondsUntil(1) ?? 0)
    }

    /// One line for the state dump.
    public var summary: String {
        guard isLimited else { return "unlimited" }
        func describe(_ name: String, _ bucket: TokenBucket?) -> String {
            guard let bucket else { return "\(name) unlimited" }
            return "\(name) \(bucket.tokens)/\(bucket.capacity) at \(bucket.refillPerSecond)/s"
                + (bucket.debt > 0 ? " (owes \(bucket.debt))" : "")
        }
        return describe("bytes", bytes) + ", " + describe("ops", operations) + ", throttled \(throttled) times"
    }
}
