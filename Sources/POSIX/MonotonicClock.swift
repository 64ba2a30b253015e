import Glibc

/// CLOCK_MONOTONIC: the clock every wait and deadline here is on.
public enum MonotonicClock {
    public static func nanoseconds() -> UInt64 {
        var now = timespec()
        _ = clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }

    public static func seconds() -> Double { Double(nanoseconds()) / 1e9 }

    /// The deadline `seconds` from now, in nanoseconds; a negative or NaN span is now, and a
    /// huge one (infinity included) is capped at 2^63 ns, past any uptime, so nothing overflows.
    public static func deadline(after seconds: Double) -> UInt64 {
        let span = seconds.isNaN || seconds <= 0 ? 0 : min(seconds * 1e9, Double(UInt64.max / 2))
        return nanoseconds() + UInt64(span)
    }
}

extension MonotonicClock {
    /// The deadline `milliseconds` from now, in nanoseconds.
    public static func deadline(milliseconds: UInt32) -> UInt64 { nanoseconds() + UInt64(milliseconds) * 1_000_000 }

    /// What is left until `deadline` (nanoseconds), as a poll(2) timeout: rounded up to a whole
    /// millisecond, 0 once it has passed, at most Int32.max.
    public static func pollTimeout(until deadline: UInt64) -> Int32 {
        let now = nanoseconds()
        guard deadline > now else { return 0 }
        return Int32(clamping: (deadline - now + 999_999) / 1_000_000)
    }
}
