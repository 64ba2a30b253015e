/// Counts what a session has used against its `Limits`. Pure: the caller passes the time
/// elapsed since the session started, from a monotonic clock.
public struct LimitTracker: Sendable {
    public let limits: Limits
    public private(set) var cyclesUsed = 0
    public private(set) var outputBytesUsed = 0

    public init(limits: Limits) {
        self.limits = limits
    }

    /// Resumes counting where an earlier process left off (a long-lived VM's calls each come
    /// from their own `momin exec`).
    public init(limits: Limits, cyclesUsed: Int, outputBytesUsed: Int) {
        self.limits = limits
        self.cyclesUsed = max(0, cyclesUsed)
        self.outputBytesUsed = max(0, outputBytesUsed)
    }

    /// Counts one tool call before the policy judges it (a denied call uses a cycle too);
    /// deny once the cycles are used up or the wall time has passed.
    public mutating func admitCall(elapsed: Duration) -> Decision {
        if elapsed >= limits.wallTime { return .deny(limits.rules.wallTime, .wallTimeExceeded(limit: limits.wallTime)) }
        if cyclesUsed >= limits.cycles { return .deny(limits.rules.cycles, .cyclesExhausted(limit: limits.cycles)) }
        cyclesUsed += 1
        return .allow(limits.rules.cycles)
    }

    /// Adds output the agent received; deny once the total is over the limit (the gateway stops
    /// the stream there). `remainingOutputBytes` says how much more may pass.
    public mutating func recordOutput(bytes: Int, elapsed: Duration) -> Decision {
        if elapsed >= limits.wallTime { return .deny(limits.rules.wallTime, .wallTimeExceeded(limit: limits.wallTime)) }
        let (sum, overflow) = outputBytesUsed.addingReportingOverflow(max(0, bytes))
        outputBytesUsed = overflow ? Int.max : sum
        if outputBytesUsed > limits.outputBytes {
            return .deny(limits.rules.outputBytes, .outputExceeded(limit: limits.outputBytes))
        }
        return .allow(limits.rules.outputBytes)
    }

    public var remainingOutputBytes: Int { max(0, limits.outputBytes - outputBytesUsed) }
    /// What is left of the wall time, `elapsed` into the session; zero once it has passed.
    public func remainingWallTime(elapsed: Duration) -> Duration { max(.zero, limits.wallTime - elapsed) }
    public var remainingCycles: Int { max(0, limits.cycles - cyclesUsed) }
}
