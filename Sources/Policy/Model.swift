/// A validated, compiled policy for one agent. Build it with `AgentPolicy.parse` or
/// `AgentPolicy.load`; judge calls with `evaluate`. The schema is in docs/policy.md.
///
/// Two policies are equal when they mean the same: where their rules were written (file, lines)
/// is not compared, so a YAML file and its JSON twin give equal policies.
public struct AgentPolicy: Sendable, Equatable {
    public static let supportedVersions = [1]

    /// The file it was read from, for messages; not compared.
    public var file: String
    public var version: Int
    public var agent: String
    public var description: String?
    public var tools: Tools
    public var limits: Limits
    public var resources: Resources
    public var network = Network()
    /// nil: the policy allows no Brain calls.
    public var brain: Brain?
    /// nil: the policy allows no package installs.
    public var packages: Packages?

    public init(file: String, version: Int, agent: String, description: String?, tools: Tools, limits: Limits, resources: Resources) {
        self.file = file
        self.version = version
        self.agent = agent
        self.description = description
        self.tools = tools
        self.limits = limits
        self.resources = resources
    }

    public static func == (a: AgentPolicy, b: AgentPolicy) -> Bool {
        a.version == b.version && a.agent == b.agent && a.description == b.description && a.tools == b.tools
            && a.limits == b.limits && a.resources == b.resources && a.network == b.network && a.brain == b.brain
            && a.packages == b.packages
    }
}

/// Where a rule stands: a stable identifier ("tools.exec[1]", "tools.files.read[0]",
/// "limits.cycles", "default") and the line it was written on. Equal when the identifiers are.
public struct RuleRef: Sendable, Hashable, CustomStringConvertible {
    public let id: String
    /// 1-based; nil for rules nobody wrote (the default deny, a default limit).
    public let line: Int?

    public init(_ id: String, line: Int?) {
        self.id = id
        self.line = line
    }

    public static let defaultDeny = RuleRef("default", line: nil)

    public static func == (a: RuleRef, b: RuleRef) -> Bool { a.id == b.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }

    public var description: String { line.map { "\(id) (line \($0))" } ?? id }
}

public struct Tools: Sendable, Equatable {
    /// Where `tools.exec` was written (nil when it was not): denials of programs no rule names
    /// point here.
    public var execList: RuleRef?
    public var exec: [ExecRule] = []
    public var readList: RuleRef?
    public var read: [PathRule] = []
    public var writeList: RuleRef?
    public var write: [PathRule] = []
    public var bucketList: RuleRef?
    public var buckets: [BucketRule] = []
    public var doorList: RuleRef?
    public var doors: [DoorRule] = []

    public init() {}
}

/// One path glob of `tools.files.read`/`write` or of an exec rule's `cwd`.
public struct PathRule: Sendable, Equatable {
    public var glob: Glob
    public var rule: RuleRef
}

/// One entry of `tools.exec`.
public struct ExecRule: Sendable, Equatable {
    public var rule: RuleRef
    /// Matched against argv[0], which must be absolute, normalised and resolved.
    public var program: Glob
    /// What argv[0] must resolve to in the guest, when not `program` itself: the multi-call
    /// binary a symlink such as /usr/bin/sha256sum → /bin/busybox names. Nil: `program`.
    public var binary: Glob?
    public var arguments: ArgumentRule
    public var env: [EnvironmentPattern]
    /// The working directories allowed; nil: only the default one ("/", or none given).
    public var cwd: [PathRule]?
    /// "tools.exec[i].env" and ".cwd", for denials (the rule's own line when not written).
    public var envRule: RuleRef
    public var cwdRule: RuleRef
}

/// What argv[1...] may be: `prefix` matched position by position, then every further argument
/// matched by at least one of `rest`, and at most `maximumCount` arguments in all.
public struct ArgumentRule: Sendable, Equatable {
    public var rule: RuleRef
    public var prefix: [ArgumentPattern]
    public var rest: [ArgumentPattern]
    public var maximumCount: Int?
}

public enum ArgumentPattern: Sendable, Equatable, CustomStringConvertible {
    /// A text glob over the argument as written.
    case text(Glob)
    /// "path:GLOB": an absolute path, normalised and resolved, matched like a file path.
    case path(Glob)

    public var description: String {
        switch self {
        case .text(let glob): glob.pattern
        case .path(let glob): "path:" + glob.pattern
        }
    }
}

/// "NAME" (any value) or "NAME=VALUE", each side a text glob.
public struct EnvironmentPattern: Sendable, Equatable {
    public var name: Glob
    public var value: Glob?
}

public enum BucketOperation: String, Sendable, Hashable, CaseIterable {
    case put, get, query
}

public struct BucketRule: Sendable, Equatable {
    public var rule: RuleRef
    public var namespace: Glob
    public var operations: Set<BucketOperation>
}

/// One entry of `tools.doors`: which agents this one may message, and how, on the doors whose
/// names match `door`. Agent names are matched by text globs (`*` crosses ".").
public struct DoorRule: Sendable, Equatable {
    public var rule: RuleRef
    public var door: Glob
    /// Agents it may send to on these doors; empty: none.
    public var send: [Glob]
    /// Agents it may receive from; empty: none.
    public var receive: [Glob]
    /// The largest message, in bytes, either way.
    public var maxMessageBytes: Int
    /// Messages that may wait for this agent on one door.
    public var queueDepth: Int
    /// Whether the audit log keeps each message's bytes; its digest is always kept.
    public var logContent: Bool

    public static let defaultMaxMessageBytes = 64 << 10
    public static let maximumMessageBytes = 1 << 20
    public static let defaultQueueDepth = 16
    public static let maximumQueueDepth = 1024
}

/// Which way a door message goes, seen from the agent whose policy judges it.
public enum DoorDirection: String, Sendable, Hashable {
    case send, receive
}

/// What one agent's session may use up. Every limit is positive.
public struct Limits: Sendable, Equatable {
    /// Tool calls, allowed or not.
    public var cycles: Int
    public var wallTime: Duration
    /// The longest one exec may run; the gateway gives an exec without a timeout this one.
    public var callTimeout: Duration
    /// Bytes of output (stdout, stderr, file data) over the whole session.
    public var outputBytes: Int
    /// Where each limit was written; ids "limits.cycles" and so on, lines nil for defaults.
    public var rules: LimitRules

    public static let defaults = Limits(
        cycles: 100, wallTime: .seconds(600), callTimeout: .seconds(60), outputBytes: 16 << 20, rules: LimitRules())

    public static func == (a: Limits, b: Limits) -> Bool {
        a.cycles == b.cycles && a.wallTime == b.wallTime && a.callTimeout == b.callTimeout && a.outputBytes == b.outputBytes
    }
}

public struct LimitRules: Sendable {
    public var cycles = RuleRef("limits.cycles", line: nil)
    public var wallTime = RuleRef("limits.wall_time", line: nil)
    public var callTimeout = RuleRef("limits.call_timeout", line: nil)
    public var outputBytes = RuleRef("limits.output_bytes", line: nil)
}

/// What the agent's microVM and its children may be given; the resource ledger enforces them.
public struct Resources: Sendable, Equatable {
    public var vcpus: Int
    public var memoryMiB: Int
    public var gpus: Int
    /// How many sub-agents (each its own microVM) it may start.
    public var subAgents: Int
    /// The host files it may have attached as disks (`--disk`), first match decides; none
    /// by default.
    public var disks: [DiskRule] = []
    /// Where each was written; ids "resources.vcpus" and so on, lines nil for defaults.
    public var rules = ResourceRules()

    public static let maximumVCPUs = 254

    public init(vcpus: Int, memoryMiB: Int, gpus: Int, subAgents: Int) {
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
        self.gpus = gpus
        self.subAgents = subAgents
    }
    public static let defaults = Resources(vcpus: 1, memoryMiB: 512, gpus: 0, subAgents: 0)

    public static func == (a: Resources, b: Resources) -> Bool {
        a.vcpus == b.vcpus && a.memoryMiB == b.memoryMiB && a.gpus == b.gpus && a.subAgents == b.subAgents && a.disks == b.disks
    }
}

public struct ResourceRules: Sendable {
    public var vcpus = RuleRef("resources.vcpus", line: nil)
    public var memoryMiB = RuleRef("resources.memory_mib", line: nil)
    public var gpus = RuleRef("resources.gpus", line: nil)
    public var subAgents = RuleRef("resources.sub_agents", line: nil)
    /// `resources.disks` itself, where it was written; nil when the policy has none.
    public var diskList: RuleRef?
}

/// One entry of `resources.disks`: host paths (a glob over the resolved path), whether they
/// may be attached writable (a read-write rule allows read-only attachment too), and the most
/// bytes and requests per second the device may serve such a disk (nil: no cap).
public struct DiskRule: Sendable, Equatable {
    public var glob: Glob
    public var writable: Bool
    public var bytesPerSecond: UInt64?
    public var operationsPerSecond: UInt64?
    public var rule: RuleRef

    public init(glob: Glob, writable: Bool, bytesPerSecond: UInt64? = nil, operationsPerSecond: UInt64? = nil, rule: RuleRef) {
        self.glob = glob
        self.writable = writable
        self.bytesPerSecond = bytesPerSecond
        self.operationsPerSecond = operationsPerSecond
        self.rule = rule
    }
}

extension AgentPolicy {
    /// The `resources.disks` rule an allowed `attachDisk` decision names: its rate caps apply
    /// to the disk.
    public func diskRule(for decision: Decision) -> DiskRule? {
        guard decision.isAllowed else { return nil }
        return resources.disks.first { $0.rule == decision.rule }
    }
}
