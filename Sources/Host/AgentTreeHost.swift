import Agents
import Audit
import Buckets
import Doors
import Egress
import Gateway
import MachineConfig

/// The one wiring of an agent tree, shared by a run (`VMSession`) and a long-lived VM's agent
/// host (`AgentHost`): the root agent's hands calls served at its VM's hands socket, its
/// sub-agents booted from `base` as VMs of their own (`SubAgentVMs`), every call of the tree
/// judged by its agent's session and appended to `log`, with request ids from `requestIDs`, and
/// counted in the tree's one `budget` (nil: the tree has no policy to count against).
public enum AgentTreeHost {
    public struct Wiring: Sendable {
        /// The root's VM, as its registry knows it.
        public var root: String
        public var registry: VMRegistry
        public var environment: HostEnvironment
        /// The machine sub-agents boot from (their vCPUs and memory are their own).
        public var base: MachineConfiguration
        public var jail: VMJail.Mode

        public init(root: String, registry: VMRegistry, environment: HostEnvironment, base: MachineConfiguration,
                    jail: VMJail.Mode) {
            self.root = root
            self.registry = registry
            self.environment = environment
            self.base = base
            self.jail = jail
        }
    }

    /// Starts serving: the tree, its root added and listening. Stop it with
    /// `shutDown(root:reason:)`, which stops every sub-agent first.
    /// `disks` are the root VM's named disks, which its sub-agents may be given read-only.
    /// `tape`: a recorded session's (docs/replay.md); a replay's resolves names from it and
    /// needs no key.
    public static func start(_ wiring: Wiring, session: GovernedSession, store: BucketStore?, log: (any AuditSink)?,
                             requestIDs: RequestNumbers, budget: TreeLimits?, disks: [HeldDisk] = [],
                             tape: SessionTape? = nil) throws(AgentError) -> AgentTree {
        let launcher = SubAgentVMs(registry: wiring.registry, environment: wiring.environment, base: wiring.base,
                                   jail: wiring.jail, log: log, requestIDs: requestIDs)
        let tree = AgentTree(store: store, launcher: launcher, requestIDs: requestIDs, budget: budget)
        tree.diskPaths = HostPaths()
        tree.tape = tape
        // Beside the root VM's sockets, in the directory only the host writes; gone with the VM.
        do { tree.packageStaging = try PackageStaging(root: wiring.registry.directory(wiring.root) + "/packages") } catch {
            throw .io("package staging: \(error)")
        }
        var replaying = false
        if case .replaying(let recorded)? = tape {
            tree.egressResolver = recorded.resolver
            replaying = true
        }
        // Read once, for every agent of the tree: a sub-agent's brain has its parent's base_url.
        if session.policy?.brain != nil, !replaying {
            do { tree.brainCredential = try wiring.environment.brainCredential() } catch { throw .io(error.message) }
        }
        try tree.addRoot(Agent(name: wiring.root, parent: nil, session: session, disks: disks),
                         handsSocket: wiring.registry.handsSocket(wiring.root))
        return tree
    }
}
