import Buckets
import Crypto
import Doors
import Egress
import Gateway
import Merkle
import Policy
import POSIX

/// The agents of one `momin run`: the root VM and the sub-agents started from inside it, and
/// everything their hands calls reach: buckets, doors between them, spawn, wait and stop.
/// Every call is judged and logged by the calling agent's session before it has any effect.
public final class AgentTree: @unchecked Sendable {
    public let broker = DoorBroker()
    public let requestIDs: RequestNumbers
    /// The tail of a sub-agent's stdout and stderr kept for `hands wait`.
    public static let outputKept = 64 << 10
    /// Sub-agent names under their parent: what a registry name can hold.
    static let maxNameLength = 64

    let monitor = Monitor()
    var agents: [String: Agent] = [:]
    /// Sub-agents whose VMs are booting, and whether the tree has been shut down.
    var booting: Set<String> = []
    var closed = false
    /// How finished sub-agents ended, after their VMs are gone, for a `hands wait` that comes late.
    var finished: [String: ChildOutcome] = [:]
    /// Agents with an install running: one at a time each, so that what an agent can make the
    /// host fetch and keep is bounded (`PackageConfiguration`, `PackageStaging.keptPerAgent`).
    var installing: Set<String> = []
    let store: BucketStore?
    let launcher: any SubAgentLauncher
    /// The tree's one budget: a sub-agent joins it at spawn, under its parent.
    let budget: TreeLimits?
    /// How the host resolves its own paths, for judging the disks a spawn passes on by the
    /// child's policy; nil: this host passes no disks to sub-agents.
    public var diskPaths: (any PathResolver & Sendable)?
    /// How the host resolves the names its agents' egress asks for (tests give their own).
    public var egressResolver: any HostResolver = SystemResolver()
    /// The key the Brain relay adds to its agents' model calls; nil: none (docs/brain.md).
    public var brainCredential: BrainCredential?
    /// The Brain relay's settings (tests trust their own CA, shorten timeouts).
    public var brainConfiguration = BrainConfiguration()
    /// A recorded session's tape, for the root agent's model calls and plain HTTP (docs/replay.md);
    /// a tree with one starts no sub-agents, whose calls a record does not hold.
    public var tape: SessionTape?
    /// Where installs keep the wheels they fetched until the guest takes them; nil: this host
    /// installs nothing for its agents.
    public var packageStaging: PackageStaging?
    /// Package installs' settings (tests trust their own CA, shorten timeouts).
    public var packageConfiguration = PackageConfiguration()

    public init(store: BucketStore?, launcher: any SubAgentLauncher, requestIDs: RequestNumbers, budget: TreeLimits? = nil) {
        self.store = store
        self.budget = budget
        self.launcher = launcher
        self.requestIDs = requestIDs
    }

    /// Adds the top-level agent and serves its hands calls at `handsSocket`.
    public func addRoot(_ agent: Agent, handsSocket: HandsSocketPlace) throws(AgentError) {
        try add(agent, handsSocket: handsSocket)
    }

    func add(_ agent: Agent, handsSocket: HandsSocketPlace) throws(AgentError) {
        let name = agent.name
        let listener = try HandsListener(place: handsSocket) { [weak self] call, caller in
            guard let self else { return HandsAnswer(.failed(.failed, "the host is shutting down")) }
            return self.answer(call, from: name, caller: caller)
        }
        agent.listener = listener
        if agent.session.policy != nil {
            let brain = BrainRelay(governed: GovernedBrain(session: agent.session), credential: brainCredential, resolver: egressResolver,
                                   configuration: brainConfiguration, tape: tape)
            let relay = EgressRelay(governed: GovernedEgress(session: agent.session), resolver: egressResolver, brain: brain, tape: tape)
            do {
                for (port, entry) in [(EgressProtocol.proxyPort, EgressEntry.proxy), (EgressProtocol.brainPort, .brain)] {
                    agent.egressListeners.append(try EgressListener(place: handsSocket.sibling(port: port), entry: entry, relay: relay))
                }
            } catch {
                listener.stop()
                for egress in agent.egressListeners { egress.stop() }
                throw error
            }
        }
        broker.open(agent: name)
        monitor.holding { agents[name] = agent }
    }

    public func agent(_ name: String) -> Agent? { monitor.holding { agents[name] } }

    /// Stops every sub-agent (deepest first) and the root's listener: the run is over. A spawn
    /// still booting is stopped too, and waited for (up to 30 s), so no VM outlives the run.
    public func shutDown(root: String, reason: String) {
        let inFlight: Set<String> = monitor.holding {
            closed = true
            return booting
        }
        for name in inFlight { launcher.halt(name, reason: reason) }
        let deadline = MonotonicClock.deadline(milliseconds: 30_000)
        monitor.holding { _ = monitor.wait(until: deadline) { booting.isEmpty } }
        for child in children(of: root) { stopSubtree(child.name, reason: reason) }
        if let root = agent(root) {
            root.listener?.stop()
            for egress in root.egressListeners { egress.stop() }
            broker.close(agent: root.name)
            packageStaging?.removeAll(agent: root.name)
        }
    }

    // MARK: Calls

    /// Answers one hands call from `caller`, made in-process; see `answer`.
    public func handle(_ call: HandsCall, from caller: String) -> HandsReply {
        answer(call, from: caller, caller: .inProcess).reply
    }

    /// Answers one hands call from agent `name`; what it did is in the log before the reply.
    /// A call that blocks stops waiting, having taken nothing, when `caller` hangs up.
    public func answer(_ call: HandsCall, from name: String, caller: HandsCaller) -> HandsAnswer {
        guard let agent = agent(name) else { return HandsAnswer(.failed(.failed, "agent \(name) is not running")) }
        do {
            switch call {
            case .doorSend(let door, let to, let message, let timeout):
                return HandsAnswer(try send(from: agent, door: door, to: to, message: message, timeout: timeout, caller: caller))
            case .doorReceive(let door, let timeout):
                return try receive(by: agent, door: door, timeout: timeout, caller: caller)
            case .wait(let target, let timeout):
                return HandsAnswer(try wait(for: target, by: agent, timeout: timeout, caller: caller))
            default:
                return HandsAnswer(try answerAtOnce(call, from: agent))
            }
        } catch {
            return HandsAnswer(Self.reply(for: error))
        }
    }

    /// The calls that never wait.
    private func answerAtOnce(_ call: HandsCall, from agent: Agent) throws(GatewayError) -> HandsReply {
        switch call {
        case .whoami:
            return .ok(fields: [agent.name, agent.parent ?? ""], data: [])
        case .bucketPut(let namespace, let key, let value):
            guard let buckets = buckets(for: agent) else { return Self.noStore }
            _ = try buckets.put(namespace: namespace, key: key, value: value)
            return .ok(fields: [], data: [])
        case .bucketGet(let namespace, let key):
            guard let buckets = buckets(for: agent) else { return Self.noStore }
            guard let found = try buckets.get(namespace: namespace, key: key) else {
                return .failed(.notFound, "no key \(key) in bucket namespace \(namespace)")
            }
            return .ok(fields: [], data: found.value)
        case .bucketQuery(let namespace, let prefix):
            guard let buckets = buckets(for: agent) else { return Self.noStore }
            let entries = try buckets.query(BucketQuery(namespace: namespace, keyPrefix: prefix.isEmpty ? nil : prefix, latestOnly: true))
            let lines = entries.map { "\($0.key)\t\($0.size)\t\($0.contentHash)" }
            return .fitting(lines: lines) { shown in
                "truncated: \(shown) of \(lines.count) keys shown (a reply holds at most 1.25 MiB); narrow the key prefix"
            }
        case .spawn(let request):
            return try spawn(request, parent: agent)
        case .stop(let name):
            return try stop(name, by: agent)
        case .install(let ecosystem, let requirements):
            return install(ecosystem: ecosystem, requirements: requirements, by: agent)
        case .installFile(let install, let file, let offset):
            return installFile(install, file: file, offset: offset, by: agent)
        case .doorSend, .doorReceive, .wait:
            return .failed(.failed, "\(call.kind) waits and is answered elsewhere")
        }
    }

    /// A bucket call where the run was given no store: nothing to judge or log, as no call
    /// could have an effect.
    static let noStore = HandsReply.failed(.failed, "this run has no bucket store (momin run or momin start --buckets DB)")

    static func reply(for error: GatewayError) -> HandsReply {
        switch error {
        case .denied: .failed(.denied, error.description)
        case .bucket(.invalid): .failed(.invalid, error.description)
        default: .failed(.failed, error.description)
        }
    }

    func buckets(for agent: Agent) -> GovernedBuckets? {
        store.map { GovernedBuckets(session: agent.session, store: $0) }
    }

    // MARK: Log text


    static func sha256(_ bytes: [UInt8]) -> String { Hex.encode(SHA256.hash(data: bytes)) }

    /// Bytes as one line: printable ASCII as is, `\\`, and `\xHH` for the rest.
    static func escaped(_ bytes: [UInt8]) -> String {
        var out = ""
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\\"): out += "\\\\"
            case 0x20..<0x7f: out.unicodeScalars.append(Unicode.Scalar(byte))
            default: out += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return out
    }
}
