import Glibc
import Policy

/// A session's use of its limits (cycles, wall time, output bytes), counted where every call
/// of the session can see it.
public protocol SessionLimits: AnyObject {
    /// Counts one call and says whether it may go on (`LimitTracker.admitCall`).
    func admitCall() throws(GatewayError) -> Policy.Decision
    /// Counts output the agent received (`LimitTracker.recordOutput`).
    func recordOutput(bytes: Int) throws(GatewayError) -> Policy.Decision
    /// How much more output may reach the agent.
    func remainingOutputBytes() throws(GatewayError) -> Int
    /// What is left of the session's wall time (`LimitTracker.remainingWallTime`).
    func remainingWallTime() throws(GatewayError) -> Duration
}

/// The limits of a session that lives in one process (`momin run`): counted in memory, its
/// wall time from when the session began.
public final class InProcessLimits: SessionLimits {
    private var tracker: LimitTracker
    private let started = ContinuousClock.now

    public init(_ limits: Limits) { tracker = LimitTracker(limits: limits) }

    private var elapsed: Duration { ContinuousClock.now - started }

    public func admitCall() -> Policy.Decision { tracker.admitCall(elapsed: elapsed) }
    public func recordOutput(bytes: Int) -> Policy.Decision { tracker.recordOutput(bytes: bytes, elapsed: elapsed) }
    public func remainingOutputBytes() -> Int { tracker.remainingOutputBytes }
    public func remainingWallTime() -> Duration { tracker.remainingWallTime(elapsed: elapsed) }
}
