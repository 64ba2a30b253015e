/// One way a sub-agent's policy may allow more than its parent's: the child's rule and why.
public struct Widening: Sendable, Equatable, CustomStringConvertible {
    /// The child's rule ("tools.exec[0]", "limits.cycles", ...), with its line.
    public let rule: RuleRef
    public let reason: String

    public init(rule: RuleRef, reason: String) {
        self.rule = rule
        self.reason = reason
    }

    /// `tools.exec[0] (line 5): program "/bin/*" is not within any of the parent's exec rules`
    public var description: String { "\(rule): \(reason)" }

    public static func == (a: Widening, b: Widening) -> Bool { a.rule == b.rule && a.reason == b.reason }
}

extension AgentPolicy {
    /// Where this policy, a sub-agent's, may allow more than `parent`; empty when it is no
    /// wider. Conservative: a rule not proven to lie within one of the parent's (by
    /// `Glob.isWithin`) is reported. The checks are in docs/policy.md ("Sub-agent policies").
    ///
    /// `subtree` is the parent agent's name, when known: the child may then also talk, on a
    /// door the parent has, to the parent itself and to agents under it (`NAME` and `NAME.*`),
    /// which reaches nobody the parent could not.
    public func widenings(over parent: AgentPolicy, subtree: String? = nil) -> [Widening] {
        var found: [Widening] = []
        for rule in tools.exec { found += Self.execWidening(rule, parent.tools.exec) }
        found += Self.pathWidenings(tools.read, parent.tools.read, "files.read", write: false)
        found += Self.pathWidenings(tools.write, parent.tools.write, "files.write", write: true)
        for rule in tools.buckets {
            for operation in BucketOperation.allCases where rule.operations.contains(operation) {
                let covered = parent.tools.buckets.contains { $0.operations.contains(operation) && rule.namespace.isWithin($0.namespace) }
                if !covered {
                    found.append(Widening(
                        rule: rule.rule,
                        reason: "\(operation.rawValue) on namespace \(quoted(rule.namespace.pattern)) is not within any of the parent's bucket rules"))
                }
            }
        }
        let inside = subtree.flatMap { name in
            (try? Glob(name, kind: .text)).flatMap { own in (try? Glob(name + ".*", kind: .text)).map { [own, $0] } }
        } ?? []
        for (index, rule) in tools.doors.enumerated() {
            found += Self.doorWidening(rule, parent.tools.doors, earlier: tools.doors[..<index], inside: inside)
        }
        found += limitWidenings(parent.limits)
        found += resourceWidenings(parent.resources)
        found += networkWidenings(parent.network)
        found += brainWidenings(parent.brain)
        found += packageWidenings(parent.packages)
        return found
    }

    // MARK: Exec

    /// Nothing when one parent rule covers the child's; else the first shortfall against the
    /// first parent rule whose program covers it.
    private static func execWidening(_ child: ExecRule, _ parents: [ExecRule]) -> [Widening] {
        var first: Widening?
        for parent in parents where child.program.isWithin(parent.program) {
            guard let shortfall = execShortfall(child, parent) else { return [] }
            if first == nil { first = shortfall }
        }
        return [first ?? Widening(rule: child.rule, reason: "program \(quoted(child.program.pattern)) is not within any of the parent's exec rules")]
    }

    private static func execShortfall(_ child: ExecRule, _ parent: ExecRule) -> Widening? {
        func unlike(_ rule: RuleRef, _ what: String, _ allowed: String) -> Widening {
            Widening(rule: rule, reason: "\(what) is not within the parent's \(parent.rule), which allows \(allowed)")
        }
        let binary = child.binary ?? child.program
        let parentBinary = parent.binary ?? parent.program
        if !binary.isWithin(parentBinary) {
            return unlike(child.rule, "binary \(quoted(binary.pattern))", quoted(parentBinary.pattern))
        }
        // Argument counts are ranges: [prefix, max] with rest, [prefix, prefix] without.
        let (a, p) = (child.arguments, parent.arguments)
        let childMost = a.rest.isEmpty ? a.prefix.count : a.maximumCount
        let parentMost = p.rest.isEmpty ? p.prefix.count : p.maximumCount
        if a.prefix.count < p.prefix.count || (childMost ?? .max) > (parentMost ?? .max) {
            return unlike(a.rule, "argument count \(countRange(a.prefix.count, childMost))", countRange(p.prefix.count, parentMost))
        }
        // Every position the child may fill against the parent's pattern(s) there.
        for (index, pattern) in a.prefix.enumerated() {
            let allowed = index < p.prefix.count ? [p.prefix[index]] : p.rest
            if !allowed.contains(where: { isWithin(pattern, $0) }) {
                return unlike(a.rule, "argument \(index + 1) \(quoted(pattern.description))", patternList(allowed.map(\.description)))
            }
        }
        if (childMost ?? .max) > a.prefix.count {
            for pattern in a.rest where !p.rest.contains(where: { isWithin(pattern, $0) }) {
                return unlike(a.rule, "further argument \(quoted(pattern.description))", patternList(p.rest.map(\.description)))
            }
        }
        for pattern in child.env {
            let covered = parent.env.contains { other in
                pattern.name.isWithin(other.name) && (other.value.map { value in pattern.value?.isWithin(value) ?? false } ?? true)
            }
            if !covered {
                return unlike(child.envRule, "env \(quoted(environmentText(pattern)))", patternList(parent.env.map(environmentText)))
            }
        }
        // No cwd list: "/" only, the literal glob "/".
        let root = try! Glob("/", kind: .path)
        let cwd = child.cwd?.map(\.glob) ?? [root]
        let parentCwd = parent.cwd?.map(\.glob) ?? [root]
        for glob in cwd where !parentCwd.contains(where: { glob.isWithin($0) }) {
            return unlike(child.cwdRule, "cwd \(quoted(glob.pattern))", patternList(parentCwd.map(\.pattern)))
        }
        return nil
    }

    /// A `path:` pattern only matches absolute paths, so it lies within a text pattern that
    /// matches everything, or one that matches its only path; a text pattern is never within a
    /// `path:` one.
    private static func isWithin(_ pattern: ArgumentPattern, _ other: ArgumentPattern) -> Bool {
        switch (pattern, other) {
        case (.text(let a), .text(let b)), (.path(let a), .path(let b)): a.isWithin(b)
        case (.path(let a), .text(let b)): b.matchesEverything || a.literal.map { b.matches($0) } ?? false
        case (.text, .path): false
        }
    }

    private static func countRange(_ least: Int, _ most: Int?) -> String {
        guard let most else { return "at least \(least)" }
        return least == most ? "exactly \(least)" : "\(least) to \(most)"
    }

    static func patternList(_ patterns: [String]) -> String {
        patterns.isEmpty ? "none" : patterns.map(quoted).joined(separator: ", ")
    }

    private static func environmentText(_ pattern: EnvironmentPattern) -> String {
        pattern.name.pattern + (pattern.value.map { "=" + $0.pattern } ?? "")
    }

    // MARK: Files

    private static func pathWidenings(_ rules: [PathRule], _ parents: [PathRule], _ list: String, write: Bool) -> [Widening] {
        var found: [Widening] = []
        for rule in rules {
            guard let cover = parents.firstIndex(where: { rule.glob.isWithin($0.glob) }) else {
                found.append(Widening(rule: rule.rule, reason: "path \(quoted(rule.glob.pattern)) is not within any of the parent's \(list) globs"))
                continue
            }
            if write, let ancestor = uncoveredAncestor(rule.glob, parents, firstCover: cover) {
                found.append(Widening(rule: rule.rule, reason: "mkdir -p may create \(ancestor), which is not within any of the parent's \(list) globs"))
            }
        }
        return found
    }

    /// mkdir -p creates the ancestors inside the allowing glob's literal prefix unchecked, and
    /// the parent checks those deeper than its own first matching glob's prefix. That glob comes
    /// no later than the one covering the child's and shares its literal segments (for a literal
    /// child: the first parent glob that matches it). Ancestors between the two depths must be
    /// writable in the parent; the first that is not, or nil.
    static func uncoveredAncestor(_ glob: Glob, _ parents: [PathRule], firstCover: Int) -> String? {
        let literals = glob.literalSegments
        var shallowest = literals.count
        if let path = glob.literal {
            shallowest = parents.first { $0.glob.matches(path) }?.glob.literalPrefixDepth ?? 0
        } else {
            // Only a glob that may match one of the child's paths can be the first to match it.
            for parent in parents[...firstCover] where parent.glob.mayOverlap(glob) {
                let other = parent.glob.literalSegments
                let shared = min(other.count, literals.count)
                if other.prefix(shared).elementsEqual(literals.prefix(shared)) { shallowest = min(shallowest, other.count) }
            }
        }
        guard shallowest < literals.count else { return nil }
        for depth in (shallowest + 1)...literals.count {
            let ancestor = "/" + literals.prefix(depth).map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
            if !parents.contains(where: { $0.glob.matches(ancestor) }) { return ancestor }
        }
        return nil
    }

    // MARK: Doors

    /// The evaluator applies the first rule whose door and peer globs match, with its bounds
    /// (max_message_bytes, queue_depth, log_content), in the parent as in the child. So for each
    /// peer glob of the child's rule, every parent rule that may apply to one of its (door, peer)
    /// pairs before the one that covers them all must be no stricter than the child's; rules
    /// proven not to meet the pairs (`Glob.mayOverlap`) are passed over, and so are pairs that
    /// one of the child's earlier rules takes first (the child's rule never applies to them).
    private static func doorWidening(_ child: DoorRule, _ parents: [DoorRule], earlier: ArraySlice<DoorRule>,
                                     inside: [Glob]) -> [Widening] {
        guard let firstCover = parents.firstIndex(where: { child.door.isWithin($0.door) }) else {
            return [Widening(rule: child.rule, reason: "door \(quoted(child.door.pattern)) is not within any of the parent's door rules")]
        }
        for (direction, globs) in [(DoorDirection.send, child.send), (.receive, child.receive)] {
            for glob in globs {
                if let widening = peerWidening(child, direction, glob, parents, earlier: earlier, inside: inside, firstCover: firstCover) {
                    return [widening]
                }
            }
        }
        return []
    }

    private static func peers(_ rule: DoorRule, _ direction: DoorDirection) -> [Glob] { direction == .send ? rule.send : rule.receive }

    private static func peerWidening(_ child: DoorRule, _ direction: DoorDirection, _ glob: Glob, _ parents: [DoorRule],
                                     earlier: ArraySlice<DoorRule>, inside: [Glob], firstCover: Int) -> Widening? {
        // An earlier rule of the child's takes every pair this one has: it never applies.
        if earlier.contains(where: { child.door.isWithin($0.door) && peers($0, direction).contains { glob.isWithin($0) } }) { return nil }
        for parent in parents {
            let parentPeers = peers(parent, direction) + inside
            let meeting = parentPeers.filter { glob.mayOverlap($0) }
            guard child.door.mayOverlap(parent.door), !meeting.isEmpty else { continue }
            let covers = child.door.isWithin(parent.door) && parentPeers.contains { glob.isWithin($0) }
            // The pairs this parent rule and the child's share, all taken first by an earlier child rule.
            let shadowed = earlier.contains { rule in
                parent.door.isWithin(rule.door) && meeting.allSatisfy { peer in peers(rule, direction).contains { peer.isWithin($0) } }
            }
            if !shadowed, let shortfall = boundsShortfall(child, parent) { return shortfall }
            if covers { return nil }
        }
        let parent = parents[firstCover]
        return Widening(rule: child.rule, reason: "\(direction.rawValue) \(quoted(glob.pattern)) is not within the parent's \(parent.rule), which allows \(patternList(peers(parent, direction).map(\.pattern)))")
    }

    private static func boundsShortfall(_ child: DoorRule, _ parent: DoorRule) -> Widening? {
        func unlike(_ what: String, _ allowed: String) -> Widening {
            Widening(rule: child.rule, reason: "\(what) is not within the parent's \(parent.rule), which allows \(allowed)")
        }
        if child.maxMessageBytes > parent.maxMessageBytes {
            return unlike("max_message_bytes \(formatSize(child.maxMessageBytes))", formatSize(parent.maxMessageBytes))
        }
        if child.queueDepth > parent.queueDepth {
            return unlike("queue_depth \(child.queueDepth)", "\(parent.queueDepth)")
        }
        if parent.logContent && !child.logContent {
            return unlike("log_content false", "only true")
        }
        return nil
    }

    // MARK: Limits and resources

    private func limitWidenings(_ parent: Limits) -> [Widening] {
        var found: [Widening] = []
        let rules = limits.rules
        if limits.cycles > parent.cycles {
            found.append(Widening(rule: rules.cycles, reason: "cycles \(limits.cycles) is more than the parent's \(parent.cycles)"))
        }
        if limits.wallTime > parent.wallTime {
            found.append(Widening(
                rule: rules.wallTime, reason: "wall_time \(formatDuration(limits.wallTime)) is more than the parent's \(formatDuration(parent.wallTime))"))
        }
        if limits.callTimeout > parent.callTimeout {
            found.append(Widening(
                rule: rules.callTimeout,
                reason: "call_timeout \(formatDuration(limits.callTimeout)) is more than the parent's \(formatDuration(parent.callTimeout))"))
        }
        if limits.outputBytes > parent.outputBytes {
            found.append(Widening(
                rule: rules.outputBytes, reason: "output_bytes \(formatSize(limits.outputBytes)) is more than the parent's \(formatSize(parent.outputBytes))"))
        }
        return found
    }

    /// sub_agents may equal the parent's: the resource ledger draws every child's from its
    /// parent's sub-agent budget, so the tree stays bounded.
    private func resourceWidenings(_ parent: Resources) -> [Widening] {
        let rules = resources.rules
        let checks: [(RuleRef, String, Int, Int)] = [
            (rules.vcpus, "vcpus", resources.vcpus, parent.vcpus),
            (rules.memoryMiB, "memory_mib", resources.memoryMiB, parent.memoryMiB),
            (rules.gpus, "gpus", resources.gpus, parent.gpus),
            (rules.subAgents, "sub_agents", resources.subAgents, parent.subAgents),
        ]
        return checks.filter { $0.2 > $0.3 }.map { Widening(rule: $0.0, reason: "\($0.1) \($0.2) is more than the parent's \($0.3)") }
            + Self.diskWidenings(resources.disks, parent.disks)
    }

    /// Each disk glob within one of the parent's, rw only within an rw one, and no faster than
    /// that rule's caps (a capped rate is not widened by leaving the cap out).
    private static func diskWidenings(_ rules: [DiskRule], _ parents: [DiskRule]) -> [Widening] {
        func within(_ cap: UInt64?, _ parentCap: UInt64?) -> Bool {
            guard let parentCap else { return true }
            return cap.map { $0 <= parentCap } ?? false
        }
        return rules.compactMap { rule in
            let covering = parents.filter { rule.glob.isWithin($0.glob) && ($0.writable || !rule.writable) }
            if covering.contains(where: { within(rule.bytesPerSecond, $0.bytesPerSecond) && within(rule.operationsPerSecond, $0.operationsPerSecond) }) {
                return nil
            }
            if !covering.isEmpty {
                return Widening(rule: rule.rule, reason: "disk path \(quoted(rule.glob.pattern)) may be read or written faster than the parent's resources.disks allow (bps, iops)")
            }
            let mode = rule.writable && parents.contains(where: { rule.glob.isWithin($0.glob) }) ? " with mode rw" : ""
            return Widening(rule: rule.rule, reason: "disk path \(quoted(rule.glob.pattern)) is not within any of the parent's resources.disks\(mode)")
        }
    }
}
