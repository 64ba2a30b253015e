/// A token bucket (after Firecracker's `TokenBucket`): holds up to `capacity` tokens, gains
/// `refillPerSecond` of them per second, and lets a cost through when it holds that many.
/// Pure: every call takes the time (monotonic nanoseconds), so tests drive it with a made-up clock.
///
/// A cost above `capacity` could never be paid; it goes through when the bucket is full and
/// leaves a debt the refill pays first, so the long-run rate still holds.
public struct TokenBucket: Equatable, Sendable {
    public let capacity: UInt64
    public let refillPerSecond: UInt64
    public private(set) var tokens: UInt64
    /// What an oversized cost took beyond `capacity`, paid back before tokens accrue.
    public private(set) var debt: UInt64 = 0
    /// The time up to which refill has been counted.
    private var refilledUntil: UInt64

    static let nanosecondsPerSecond: UInt64 = 1_000_000_000

    /// A full bucket at `now`. Nil when either figure is zero (no such limit).
    public init?(capacity: UInt64, refillPerSecond: UInt64, now: UInt64) {
        guard capacity > 0, refillPerSecond > 0 else { return nil }
        self.capacity = capacity
        self.refillPerSecond = refillPerSecond
        tokens = capacity
        refilledUntil = now
    }

    /// Adds what the time since the last refill earned. A clock that went backwards earns nothing.
    public mutating func refill(now: UInt64) {
        guard now > refilledUntil else { return }
        let missing = capacity - tokens + debt
        if missing == 0 {
            refilledUntil = now
            return
        }
        let elapsed = now - refilledUntil
        // Whole tokens earned: elapsed × rate / 1e9, in 128 bits so no product overflows.
        let product = elapsed.multipliedFullWidth(by: refillPerSecond)
        let earned: UInt64
        if product.high >= Self.nanosecondsPerSecond {
            earned = .max  // the quotient does not fit 64 bits: far more than is missing
        } else {
            earned = Self.nanosecondsPerSecond.dividingFullWidth(product).quotient
        }
        if earned >= missing {
            debt = 0
            tokens = capacity
            refilledUntil = now
            return
        }
        // Keep the fraction of a token for next time: move on only by the time the whole tokens took.
        refilledUntil += Self.nanoseconds(for: earned, rate: refillPerSecond, roundingUp: false)
        let repaid = min(debt, earned)
        debt -= repaid
        tokens += earned - repaid
    }

    /// Whether `cost` would go through now (after `refill`).
    public func canTake(_ cost: UInt64) -> Bool {
        if cost <= tokens && debt == 0 { return true }
        return cost > capacity && tokens == capacity && debt == 0
    }

    /// Takes `cost` if it can go through; false (and nothing taken) if not.
    public mutating func take(_ cost: UInt64) -> Bool {
        guard canTake(cost) else { return false }
        if cost <= tokens {
            tokens -= cost
        } else {
            debt = cost - tokens
            tokens = 0
        }
        return true
    }

    /// Nanoseconds from the last refill until `cost` can go through (0 if it can now).
    public func nanosecondsUntil(_ cost: UInt64) -> UInt64 {
        if canTake(cost) { return 0 }
        let wanted = min(cost, capacity)
        let missing = wanted > tokens ? wanted - tokens + debt : debt
        return Self.nanoseconds(for: missing, rate: refillPerSecond, roundingUp: true)
    }

    /// How long `count` tokens take to earn at `rate`, saturating at UInt64.max.
    static func nanoseconds(for count: UInt64, rate: UInt64, roundingUp: Bool) -> UInt64 {
        let product = count.multipliedFullWidth(by: nanosecondsPerSecond)
        guard product.high < rate else { return .max }
        let (quotient, remainder) = rate.dividingFullWidth(product)
        return roundingUp && remainder > 0 ? quotient &+ 1 : quotient
    }
}
