import Gateway
import Policy

/// One agent as the host sees it: a VM with its governed session (the one its commands count
/// against too), where it stands in the tree, and, for a sub-agent, how its command ended.
public final class Agent: @unchecked Sendable {
    public let name: String
    public let parent: String?
    public let session: GovernedSession
    /// The named disks its VM holds, which it may pass on read-only to its sub-agents.
    public let disks: [HeldDisk]
    public var policy: AgentPolicy? { session.policy }
    var listener: HandsListener?
    /// The proxy's and the Brain's listeners; none without a policy (no policy, no egress).
    var egressListeners: [EgressListener] = []
    /// Guarded by the tree's monitor.
    var outcome: ChildOutcome?
    var stopping: String?

    public init(name: String, parent: String?, session: GovernedSession, disks: [HeldDisk] = []) {
        self.name = name
        self.parent = parent
        self.session = session
        self.disks = disks
    }

    /// 1 for a top-level VM, 2 for its sub-agents, ...
    public var depth: Int { name.split(separator: ".").count }
}
