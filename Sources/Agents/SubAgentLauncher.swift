import Gateway
import Policy

/// A sub-agent to boot, checked: its policy no wider than its parent's and its machine within
/// its own policy's caps.
public struct SpawnPlan: Sendable {
    public let name: String
    public let parent: String
    public let policy: AgentPolicy
    public let policySource: [UInt8]
    public let vcpus: Int
    public let memoryMiB: Int
    public let argv: [String]
    public let env: [String]
    /// The sub-agent's limits in its tree's budget; nil: its own, counted alone.
    public let limits: AgentLimits?
    /// Its parent's disks it is to have, each read-only; the root image, if one is here, is
    /// what it boots on.
    public var disks: [HeldDisk] = []
}

/// Why a sub-agent's VM did not come up.
public enum SpawnRefusal: Error, CustomStringConvertible {
    /// The resource ledger refused: the parent's budget, the fan-out or the depth limit.
    case noRoom(String)
    case failed(String)

    public var description: String {
        switch self {
        case .noRoom(let why), .failed(let why): why
        }
    }
}

/// What boots and stops sub-agents' VMs: momin's launch sequence (grant, jail, VMM, Doors).
public protocol SubAgentLauncher: AnyObject, Sendable {
    /// Boots the VM, its grant carved from the parent's, and returns the gateway for its
    /// session (sharing the tree's log and request numbers) and the path its hands calls arrive at.
    func boot(_ plan: SpawnPlan) throws(SpawnRefusal) -> (gateway: ToolGateway, handsSocket: HandsSocketPlace)
    /// Stops the VM and frees what it held; returns once its VMM is gone.
    func halt(_ name: String, reason: String)
}
