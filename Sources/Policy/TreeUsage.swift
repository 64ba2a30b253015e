/// What the agents of one tree have used, each counted against its own limits and every
/// ancestor's: a call made by any agent is a call of every agent above it too, so a tree never
/// spends more than its root may (docs/policy.md, "One budget per tree"). A sub-agent joins
/// only when what its policy declares fits in what is left of every budget above it.
///
/// Pure: the caller passes the time, in nanoseconds on one clock that every process counting
/// for the tree shares (CLOCK_BOOTTIME).
public struct TreeUsage: Sendable, Equatable {
    /// The part of `Limits` a tree shares: call_timeout bounds one call, not a budget.
    public struct Budget: Sendable, Equatable {
        public var cycles: Int
        public var wallTimeNanoseconds: UInt64
        public var outputBytes: Int

        public init(cycles: Int, wallTimeNanoseconds: UInt64, outputBytes: Int) {
            self.cycles = cycles
            self.wallTimeNanoseconds = wallTimeNanoseconds
            self.outputBytes = outputBytes
        }

        public init(_ limits: Limits) {
            let (seconds, attoseconds) = limits.wallTime.components
            let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
            self.init(cycles: limits.cycles,
                      wallTimeNanoseconds: nanoseconds.overflow || seconds < 0 ? .max
                          : UInt64(nanoseconds.partialValue) &+ UInt64(max(0, attoseconds / 1_000_000_000)),
                      outputBytes: limits.outputBytes)
        }
    }

    public struct Member: Sendable, Equatable {
        public var name: String
        /// Nil for the root.
        public var parent: String?
        public var budget: Budget
        public var started: UInt64
        /// Calls made by this agent and every agent under it.
        public var cycles: Int
        /// Output bytes that reached this agent and every agent under it.
        public var outputBytes: Int

        public init(name: String, parent: String?, budget: Budget, started: UInt64, cycles: Int = 0, outputBytes: Int = 0) {
            self.name = name
            self.parent = parent
            self.budget = budget
            self.started = started
            self.cycles = cycles
            self.outputBytes = outputBytes
        }

        func elapsed(_ now: UInt64) -> UInt64 { now >= started ? now - started : 0 }
        func remainingWallTime(_ now: UInt64) -> UInt64 { budget.wallTimeNanoseconds - min(budget.wallTimeNanoseconds, elapsed(now)) }
        var remainingCycles: Int { max(0, budget.cycles - cycles) }
        var remainingOutputBytes: Int { max(0, budget.outputBytes - outputBytes) }
    }

    /// Which limit of which agent stopped a call, and its value.
    public struct Exhausted: Error, Sendable, Equatable {
        public enum Limit: Sendable, Equatable {
            case cycles(Int)
            case wallTime(nanoseconds: UInt64)
            case outputBytes(Int)
        }
        public var agent: String
        public var limit: Limit

        public init(agent: String, limit: Limit) {
            self.agent = agent
            self.limit = limit
        }
    }

    /// What came of counting a call or its output.
    public enum Verdict: Sendable, Equatable {
        case counted
        case exhausted(Exhausted)
        /// The agent is not in the tree.
        case unknown
    }

    /// More members than this and a join is refused: the file that keeps them stays small.
    public static let maximumMembers = 1024

    /// The root first; each member after its parent.
    public private(set) var members: [Member]

    public init(root: String, budget: Budget, now: UInt64) {
        members = [Member(name: root, parent: nil, budget: budget, started: now)]
    }

    /// Members as read back from where they were kept; nil unless the first is the only root
    /// and every other's parent comes before it, under a distinct name.
    public init?(members: [Member]) {
        guard let root = members.first, root.parent == nil, members.count <= Self.maximumMembers else { return nil }
        var seen: Set<[UInt8]> = [Array(root.name.utf8)]
        for member in members.dropFirst() {
            guard let parent = member.parent, seen.contains(Array(parent.utf8)), seen.insert(Array(member.name.utf8)).inserted else {
                return nil
            }
        }
        self.members = members
    }

    public func member(_ name: String) -> Member? { index(name).map { members[$0] } }

    private func index(_ name: String) -> Int? { members.firstIndex { $0.name.utf8.elementsEqual(name.utf8) } }

    /// The agent's index, then its parent's, up to the root's; nil for an agent not in the tree.
    private func chain(_ name: String) -> [Int]? {
        guard var at = index(name) else { return nil }
        var chain = [at]
        while let parent = members[at].parent, let up = index(parent) {
            at = up
            chain.append(at)
        }
        return chain
    }

    // MARK: Counting

    /// Counts one call of `agent`, in its budget and every one above it, unless one of them
    /// has no cycle or no wall time left: then nothing is counted and that one is named (the
    /// agent's own first, then the nearest ancestor's).
    public mutating func admitCall(_ agent: String, now: UInt64) -> Verdict {
        guard let chain = chain(agent) else { return .unknown }
        for at in chain {
            let member = members[at]
            if member.remainingWallTime(now) == 0 {
                return .exhausted(Exhausted(agent: member.name, limit: .wallTime(nanoseconds: member.budget.wallTimeNanoseconds)))
            }
            if member.remainingCycles == 0 { return .exhausted(Exhausted(agent: member.name, limit: .cycles(member.budget.cycles))) }
        }
        for at in chain { members[at].cycles += 1 }
        return .counted
    }

    /// Adds output that reached `agent` to its count and every ancestor's; names the first whose
    /// output limit it passed (the stream stops there) or whose wall time has passed (nothing
    /// is added then).
    public mutating func recordOutput(_ agent: String, bytes: Int, now: UInt64) -> Verdict {
        guard let chain = chain(agent) else { return .unknown }
        for at in chain where members[at].remainingWallTime(now) == 0 {
            return .exhausted(Exhausted(agent: members[at].name, limit: .wallTime(nanoseconds: members[at].budget.wallTimeNanoseconds)))
        }
        var over: Exhausted?
        for at in chain {
            let (sum, overflow) = members[at].outputBytes.addingReportingOverflow(max(0, bytes))
            members[at].outputBytes = overflow ? .max : sum
            if over == nil, members[at].outputBytes > members[at].budget.outputBytes {
                over = Exhausted(agent: members[at].name, limit: .outputBytes(members[at].budget.outputBytes))
            }
        }
        return over.map(Verdict.exhausted) ?? .counted
    }

    /// The least output left to `agent` or any agent above it.
    public func remainingOutputBytes(_ agent: String) -> Int? {
        chain(agent).map { $0.map { members[$0].remainingOutputBytes }.min() ?? 0 }
    }

    /// The least wall time left to `agent` or any agent above it, in nanoseconds.
    public func remainingWallTime(_ agent: String, now: UInt64) -> UInt64? {
        chain(agent).map { $0.map { members[$0].remainingWallTime(now) }.min() ?? 0 }
    }

    // MARK: Joining

    /// Adds `child` under `parent` with its own budget, or says why not: the budget must fit in
    /// what is left of the parent's and of every budget above it (cycles, output bytes, wall
    /// time), and the tree must have room. A name that was here before (a sub-agent that ended)
    /// starts afresh, with nothing left under it; what it spent stays spent above it.
    public mutating func join(_ child: String, parent: String, budget: Budget, now: UInt64) -> String? {
        guard let chain = chain(parent) else { return "\(parent) is not in the tree's budget" }
        for at in chain {
            let above = members[at]
            let whose = at == chain[0] ? "its parent \(above.name)" : "\(above.name), above its parent"
            if budget.cycles > above.remainingCycles {
                return "its limits.cycles \(budget.cycles) is more than the \(above.remainingCycles) calls left to \(whose)"
            }
            if budget.outputBytes > above.remainingOutputBytes {
                return "its limits.output_bytes \(budget.outputBytes) is more than the \(above.remainingOutputBytes) bytes left to \(whose)"
            }
            if budget.wallTimeNanoseconds > above.remainingWallTime(now) {
                return "its limits.wall_time \(Self.seconds(budget.wallTimeNanoseconds)) is more than the "
                    + "\(Self.seconds(above.remainingWallTime(now))) left to \(whose)"
            }
        }
        if let old = index(child) {
            // The old member and everything under it go; later members keep their order.
            var gone: Set<[UInt8]> = [Array(members[old].name.utf8)]
            members = members.filter { member in
                if gone.contains(Array(member.name.utf8)) { return false }
                if let up = member.parent, gone.contains(Array(up.utf8)) {
                    gone.insert(Array(member.name.utf8))
                    return false
                }
                return true
            }
        }
        guard members.count < Self.maximumMembers else {
            return "the tree already has \(Self.maximumMembers) agents in its budget"
        }
        members.append(Member(name: child, parent: parent, budget: budget, started: now))
        return nil
    }

    private static func seconds(_ nanoseconds: UInt64) -> String {
        let tenths = nanoseconds / 100_000_000
        return "\(tenths / 10).\(tenths % 10)s"
    }
}

extension TreeUsage.Verdict {
    /// The decision for `agent`, whose own limits were written at `rules`: allowed by `rule`,
    /// or denied by the limit that ran out, the agent's own (`limits.cycles`) or an
    /// ancestor's (`limits.cycles@NAME`). Nil for an agent not in the tree.
    public func decision(for agent: String, rules: LimitRules, allowedBy rule: RuleRef) -> Decision? {
        let exhausted: TreeUsage.Exhausted
        switch self {
        case .counted: return .allow(rule)
        case .unknown: return nil
        case .exhausted(let which): exhausted = which
        }
        let (own, reason): (RuleRef, Reason) =
            switch exhausted.limit {
            case .cycles(let limit): (rules.cycles, .cyclesExhausted(limit: limit))
            case .wallTime(let ns): (rules.wallTime, .wallTimeExceeded(limit: .nanoseconds(Int64(clamping: ns))))
            case .outputBytes(let limit): (rules.outputBytes, .outputExceeded(limit: limit))
            }
        if exhausted.agent.utf8.elementsEqual(agent.utf8) { return .deny(own, reason) }
        return .deny(RuleRef(own.id + "@" + exhausted.agent, line: nil), .ancestorLimit(ancestor: exhausted.agent, reason))
    }
}
