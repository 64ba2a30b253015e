import Glibc
import Policy
import POSIX
import Synchronization

/// The live count of one agent tree's budget (`TreeUsage`), which every session of the tree
/// counts against: each call of an agent is counted in its own limits and in every ancestor's,
/// and a sub-agent joins only when its declared limits fit in what is left above it.
///
/// Kept in memory for a run, whose whole tree lives in its one process; in a file for a
/// long-lived VM, whose calls come from each `momin exec` and from its agent host, so that the
/// count outlives every one of them. Each file update is a read-modify-write under flock(2).
/// Times are CLOCK_BOOTTIME, which, unlike CLOCK_MONOTONIC, processes share and which counts
/// suspend.
///
/// The file: `momin-limits 2`, then a line per agent, the root first, each after its parent:
/// `agent NAME PARENT STARTED CYCLES WALL_NS OUTPUT USED_CYCLES USED_OUTPUT` (PARENT `-` for the
/// root). A file that does not read back is an error naming it, never a fresh start.
public final class TreeLimits: Sendable {
    private enum Store: Sendable {
        case memory(InMemory)
        case file(String)
    }

    private final class InMemory: Sendable {
        let usage: Mutex<TreeUsage>
        init(_ usage: TreeUsage) { self.usage = Mutex(usage) }
    }

    private let store: Store
    private let clock: @Sendable () -> UInt64

    /// The largest usage file read back: 1024 agents of at most ~250 bytes each.
    static let maximumFileBytes = 256 << 10

    private init(_ store: Store, clock: @escaping @Sendable () -> UInt64) {
        self.store = store
        self.clock = clock
    }

    /// A tree counted in this process, its root starting now.
    public static func inMemory(root: String, limits: Limits, clock: @escaping @Sendable () -> UInt64 = bootTime) -> TreeLimits {
        TreeLimits(.memory(InMemory(TreeUsage(root: root, budget: TreeUsage.Budget(limits), now: clock()))), clock: clock)
    }

    /// The tree whose usage file `create` made.
    public static func file(_ path: String, clock: @escaping @Sendable () -> UInt64 = bootTime) -> TreeLimits {
        TreeLimits(.file(path), clock: clock)
    }

    /// Makes the usage file of a tree whose root starts now (the file must not exist: making it
    /// again would reset the count).
    public static func create(path: String, root: String, limits: Limits, clock: @Sendable () -> UInt64 = bootTime) throws(GatewayError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .limitState("cannot create \(path): \(describeErrno())") }
        defer { close(fd) }
        try write(TreeUsage(root: root, budget: TreeUsage.Budget(limits), now: clock()), to: fd, path: path)
    }

    /// The limits of `agent`, a member of the tree whose own limits are `limits` (the rules its
    /// denials name).
    public func session(_ agent: String, limits: Limits) -> AgentLimits { AgentLimits(agent: agent, limits: limits, tree: self) }

    /// Adds sub-agent `child` under `parent` with `limits`; the reason it cannot join, or nil.
    public func join(_ child: String, parent: String, limits: Limits) throws(GatewayError) -> String? {
        try update { usage, now in usage.join(child, parent: parent, budget: TreeUsage.Budget(limits), now: now) }
    }

    /// The members as counted now (for `momin ps` and tests).
    public func usage() throws(GatewayError) -> TreeUsage { try update { usage, _ in usage } }

    var place: String {
        switch store {
        case .memory: "this process"
        case .file(let path): path
        }
    }

    /// Applies `change` to the usage as it is now, atomically for every process of the tree.
    func update<T>(_ change: (inout TreeUsage, UInt64) -> T) throws(GatewayError) -> T {
        switch store {
        case .memory(let state):
            let now = clock()
            return state.usage.withLock { change(&$0, now) }
        case .file(let path):
            let fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { throw .limitState("cannot open \(path): \(describeErrno())") }
            defer { close(fd) }  // closing drops the lock
            guard retryingEINTR({ flock(fd, LOCK_EX) }) == 0 else { throw .limitState("cannot lock \(path): \(describeErrno())") }
            var usage = try Self.read(fd, path: path)
            let before = usage
            let result = change(&usage, clock())
            if usage != before { try Self.write(usage, to: fd, path: path) }
            return result
        }
    }

    @Sendable public static func bootTime() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_BOOTTIME, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    // MARK: The file

    static let header = "momin-limits 2"

    static func render(_ usage: TreeUsage) -> String {
        var text = header + "\n"
        for m in usage.members {
            text += "agent \(m.name) \(m.parent ?? "-") \(m.started) \(m.budget.cycles) \(m.budget.wallTimeNanoseconds) "
                + "\(m.budget.outputBytes) \(m.cycles) \(m.outputBytes)\n"
        }
        return text
    }

    static func parse(_ text: String, path: String) throws(GatewayError) -> TreeUsage {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first == Substring(header) else {
            throw .limitState("\(path) is not a usage file of this version (line 1: '\(lines.first?.prefix(40) ?? "")', not '\(header)')")
        }
        var members: [TreeUsage.Member] = []
        for (index, line) in lines.enumerated().dropFirst() where !(line.isEmpty && index == lines.count - 1) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            let numbers = parts.count == 9 ? parts[3...].compactMap { UInt64($0) } : []
            guard parts.count == 9, parts[0] == "agent", !parts[1].isEmpty, !parts[2].isEmpty, numbers.count == 6 else {
                throw .limitState("\(path) line \(index + 1): expected 'agent NAME PARENT STARTED CYCLES WALL_NS OUTPUT USED_CYCLES USED_OUTPUT', found '\(line.prefix(60))'")
            }
            let budget = TreeUsage.Budget(cycles: Int(clamping: numbers[1]), wallTimeNanoseconds: numbers[2],
                                          outputBytes: Int(clamping: numbers[3]))
            members.append(TreeUsage.Member(name: String(parts[1]), parent: parts[2] == "-" ? nil : String(parts[2]), budget: budget,
                                            started: numbers[0], cycles: Int(clamping: numbers[4]), outputBytes: Int(clamping: numbers[5])))
        }
        guard let usage = TreeUsage(members: members) else {
            throw .limitState("\(path) does not hold one tree: the root first, each agent once and after its parent")
        }
        return usage
    }

    private static func read(_ fd: Int32, path: String) throws(GatewayError) -> TreeUsage {
        var bytes = [UInt8](repeating: 0, count: maximumFileBytes + 1)
        var filled = 0
        while filled < bytes.count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + filled, $0.count - filled, off_t(filled)) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw .limitState("cannot read \(path): \(describeErrno())") }
            if n == 0 { break }
            filled += n
        }
        guard filled <= maximumFileBytes else { throw .limitState("\(path) is larger than \(maximumFileBytes) bytes") }
        return try parse(String(decoding: bytes[..<filled], as: UTF8.self), path: path)
    }

    /// Rewrites the file in place: one pwrite, then the tail cut; every reader holds the lock.
    private static func write(_ usage: TreeUsage, to fd: Int32, path: String) throws(GatewayError) {
        let text = Array(render(usage).utf8)
        let n = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard n == text.count, ftruncate(fd, off_t(text.count)) == 0 else { throw .limitState("cannot write \(path): \(describeErrno())") }
    }
}

/// One agent's limits in its tree's budget: its calls and output counted in its own limits and
/// every ancestor's (`TreeLimits`).
public final class AgentLimits: SessionLimits, Sendable {
    public let agent: String
    public let limits: Limits
    public let tree: TreeLimits

    init(agent: String, limits: Limits, tree: TreeLimits) {
        self.agent = agent
        self.limits = limits
        self.tree = tree
    }

    public func admitCall() throws(GatewayError) -> Policy.Decision {
        let agent = agent
        return try decision(try tree.update { usage, now in usage.admitCall(agent, now: now) }, allowedBy: limits.rules.cycles)
    }

    public func recordOutput(bytes: Int) throws(GatewayError) -> Policy.Decision {
        let agent = agent
        return try decision(try tree.update { usage, now in usage.recordOutput(agent, bytes: bytes, now: now) },
                            allowedBy: limits.rules.outputBytes)
    }

    public func remainingOutputBytes() throws(GatewayError) -> Int {
        let agent = agent
        guard let remaining = try tree.update({ usage, _ in usage.remainingOutputBytes(agent) }) else { throw notInTree }
        return remaining
    }

    public func remainingWallTime() throws(GatewayError) -> Duration {
        let agent = agent
        guard let remaining = try tree.update({ usage, now in usage.remainingWallTime(agent, now: now) }) else { throw notInTree }
        return .nanoseconds(Int64(clamping: remaining))
    }

    private var notInTree: GatewayError { .limitState("agent \(agent) is not in its tree's budget (\(tree.place))") }

    private func decision(_ verdict: TreeUsage.Verdict, allowedBy rule: RuleRef) throws(GatewayError) -> Policy.Decision {
        guard let decision = verdict.decision(for: agent, rules: limits.rules, allowedBy: rule) else { throw notInTree }
        return decision
    }
}
