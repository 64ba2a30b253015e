import Devices
import Testing

/// `#expect` cannot call a mutating method on a local struct: these hold one and forward.
@dynamicMemberLookup
final class Bucket {
    var value: TokenBucket
    init(_ value: TokenBucket) { self.value = value }
    subscript<T>(dynamicMember path: KeyPath<TokenBucket, T>) -> T { value[keyPath: path] }
    func take(_ cost: UInt64) -> Bool { value.take(cost) }
    func refill(now: UInt64) { value.refill(now: now) }
    func canTake(_ cost: UInt64) -> Bool { value.canTake(cost) }
    func nanosecondsUntil(_ cost: UInt64) -> UInt64 { value.nanosecondsUntil(cost) }
}

@dynamicMemberLookup
final class Limiter {
    var value: RateLimiter
    init(_ value: RateLimiter) { self.value = value }
    subscript<T>(dynamicMember path: KeyPath<RateLimiter, T>) -> T { value[keyPath: path] }
    func take(bytes: UInt64, now: UInt64) -> Bool { value.take(bytes: bytes, now: now) }
    func nanosecondsUntil(bytes: UInt64) -> UInt64 { value.nanosecondsUntil(bytes: bytes) }
}

/// The token bucket and the two-bucket limiter, with the time given by hand (nanoseconds).
@Suite struct TokenBucketTests {
    static let second: UInt64 = 1_000_000_000
    static let start: UInt64 = 5 * second

    @Test func zeroCapacityOrRateIsNoBucket() {
        #expect(TokenBucket(capacity: 0, refillPerSecond: 10, now: 0) == nil)
        #expect(TokenBucket(capacity: 10, refillPerSecond: 0, now: 0) == nil)
    }

    @Test func aNewBucketIsFullAndEmptiesByItsCosts() throws {
        let bucket = Bucket(try #require(TokenBucket(capacity: 100, refillPerSecond: 10, now: Self.start)))
        #expect(bucket.tokens == 100)
        #expect(bucket.take(60))
        #expect(bucket.take(40))
        #expect(bucket.tokens == 0)
        #expect(!bucket.take(1))
        #expect(bucket.tokens == 0)  // a refused take costs nothing
        #expect(bucket.take(0))
    }

    @Test func refillEarnsAtTheRateAndStopsAtTheCapacity() throws {
        let bucket = Bucket(try #require(TokenBucket(capacity: 100, refillPerSecond: 10, now: Self.start)))
        #expect(bucket.take(100))
        bucket.refill(now: Self.start + Self.second / 2)
        #expect(bucket.tokens == 5)
        bucket.refill(now: Self.start + 3 * Self.second)
        #expect(bucket.tokens == 30)
        bucket.refill(now: Self.start + 1000 * Self.second)
        #expect(bucket.tokens == 100)
    }

    /// Fractions of a token carry over instead of being lost at each refill.
    @Test func fractionsOfATokenAreKept() throws {
        let bucket = Bucket(try #require(TokenBucket(capacity: 10, refillPerSecond: 3, now: Self.start)))
        #expect(bucket.take(10))
        var now = Self.start
        for _ in 0..<10 {
            now += Self.second / 10  // 0.3 token each time
            bucket.refill(now: now)
        }
        #expect(bucket.tokens == 3)
        now += Self.second * 2 / 3 + 1
        bucket.refill(now: now)
        #expect(bucket.tokens == 5)
    }

    @Test func aClockGoingBackwardsEarnsNothing() throws {
        let bucket = Bucket(try #require(TokenBucket(capacity: 10, refillPerSecond: 10, now: Self.start)))
        #expect(bucket.take(10))
        bucket.refill(now: Self.start - Self.second)
        #expect(bucket.tokens == 0)
        bucket.refill(now: Self.start + Self.second / 10)
        #expect(bucket.tokens == 1)
    }

    @Test func theWaitIsExactlyWhatTheMissingTokensTake() throws {
        let bucket = Bucket(try #require(TokenBucket(capacity: 1000, refillPerSecond: 300, now: Self.start)))
        #expect(bucket.nanosecondsUntil(1000) == 0)
        #expect(bucket.take(1000))
        #expect(bucket.nanosecondsUntil(3) == Self.second / 100)
        #expect(bucket.nanosecondsUntil(1) == 3_333_334)  // rounded up, never early
        let wait = bucket.nanosecondsUntil(200)
        bucket.refill(now: Self.start + wait - 1)
        #expect(!bucket.canTake(200))
        bucket.refill(now: Self.start + wait)
        #expect(bucket.take(200))
    }

    /// A cost above the capacity goes through only on a full bucket, and leaves a debt that the
    /// refill pays before any token is earned.
    @Test func anOversizedCostLeavesADebt() throws {
        let bucket = Bucket(try #require(TokenBucket(capacity: 100, refillPerSecond: 100, now: Self.start)))
        #expect(bucket.take(10))
        #expect(!bucket.take(250))  // not full
        bucket.refill(now: Self.start + Self.second)
        #expect(bucket.take(250))
        #expect(bucket.tokens == 0 && bucket.debt == 150)
        #expect(!bucket.take(1))
        #expect(bucket.nanosecondsUntil(1) == Self.second * 151 / 100)
        bucket.refill(now: Self.start + 2 * Self.second)  // 100 earned, all to the debt
        #expect(bucket.debt == 50 && bucket.tokens == 0)
        #expect(!bucket.take(1))
        bucket.refill(now: Self.start + 3 * Self.second)
        #expect(bucket.debt == 0 && bucket.tokens == 50)
        #expect(bucket.nanosecondsUntil(250) == Self.second / 2)  // needs a full bucket
    }

    @Test func hugeRatesAndIntervalsDoNotOverflow() throws {
        let bucket = Bucket(try #require(TokenBucket(capacity: .max, refillPerSecond: .max, now: 0)))
        #expect(bucket.take(.max - 1))
        bucket.refill(now: .max)
        #expect(bucket.tokens == .max)
        let slow = Bucket(try #require(TokenBucket(capacity: .max, refillPerSecond: 1, now: 0)))
        #expect(slow.take(.max))
        #expect(slow.nanosecondsUntil(.max) == .max)  // saturates
        slow.refill(now: 10 * Self.second)
        #expect(slow.tokens == 10)
    }
}

@Suite struct RateLimiterTests {
    static let second = TokenBucketTests.second

    @Test func noLimitsLetEverythingThrough() {
        let limiter = Limiter(RateLimiter(bytes: nil, operations: nil, now: 0))
        #expect(!limiter.isLimited)
        for _ in 0..<1000 { #expect(limiter.take(bytes: 1 << 30, now: 0)) }
        #expect(limiter.nanosecondsUntil(bytes: 1 << 30) == 0)
        #expect(limiter.summary == "unlimited")
        #expect(!RateLimiter(bytes: .init(perSecond: 0), operations: .init(perSecond: 0), now: 0).isLimited)
    }

    @Test func aBurstDefaultsToOneSecondsWorth() {
        #expect(RateLimiter.Limit(perSecond: 7) == RateLimiter.Limit(perSecond: 7, burst: 7))
        let limiter = RateLimiter(bytes: .init(perSecond: 10, burst: 40), operations: .init(perSecond: 3), now: 0)
        #expect(limiter.bytes?.capacity == 40 && limiter.bytes?.refillPerSecond == 10)
        #expect(limiter.operations?.capacity == 3)
    }

    /// A request needs both buckets; when one is short, neither is charged.
    @Test func bothBucketsMustAllowAndARefusalChargesNeither() throws {
        let limiter = Limiter(RateLimiter(bytes: .init(perSecond: 1000), operations: .init(perSecond: 2), now: 0))
        #expect(limiter.take(bytes: 600, now: 0))
        #expect(!limiter.take(bytes: 600, now: 0))  // bytes short
        #expect(limiter.bytes?.tokens == 400 && limiter.operations?.tokens == 1)
        #expect(limiter.take(bytes: 400, now: 0))
        #expect(!limiter.take(bytes: 0, now: 0))  // operations short
        #expect(limiter.bytes?.tokens == 0)
        #expect(limiter.throttled == 2)
        // The longer wait of the two: 0.5 s for an operation, 0.1 s for 100 bytes.
        #expect(limiter.nanosecondsUntil(bytes: 100) == Self.second / 2)
        #expect(limiter.nanosecondsUntil(bytes: 900) == Self.second * 9 / 10)
        #expect(!limiter.take(bytes: 100, now: Self.second / 2 - 1))
        #expect(limiter.take(bytes: 100, now: Self.second / 2))
    }

    @Test func theSummaryNamesEachBucket() {
        let limiter = Limiter(RateLimiter(bytes: .init(perSecond: 100), operations: nil, now: 0))
        _ = limiter.take(bytes: 250, now: 0)
        _ = limiter.take(bytes: 1, now: 0)
        #expect(limiter.summary == "bytes 0/100 at 100/s (owes 150), ops unlimited, throttled 1 times")
    }
}
