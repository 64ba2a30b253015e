import Glibc
import Policy

/// A session's use of its limits (cycles, wall time, output bytes), counted where every call
/// of the session can see it.
public protocol SessionLimits: AnyObject {
    /// Counts one call and says whether it may go on (`TreeUsage.admitCall`).
    func admitCall() throws(GatewayError) -> Policy.Decision
    /// Counts output the agent received (`TreeUsage.recordOutput`).
    func recordOutput(bytes: Int) throws(GatewayError) -> Policy.Decision
    /// How much more output may reach the agent.
    func remainingOutputBytes() throws(GatewayError) -> Int
    /// What is left of the session's wall time (`TreeUsage.remainingWallTime`).
    func remainingWallTime() throws(GatewayError) -> Duration
}
