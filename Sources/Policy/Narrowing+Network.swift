/// `network` and `brain` for sub-agents (docs/policy.md, "Sub-agent policies").
extension AgentPolicy {
    func networkWidenings(_ parent: Network) -> [Widening] {
        // Without egress rules no connection is made, so the limits are moot.
        guard !network.egress.isEmpty else { return [] }
        var found = network.egress.indices.compactMap { egressWidening($0, parent.egress) }
        let rules = network.limits.rules
        found += Self.capWidening(rules.connections, "connections", network.limits.connections, parent.limits.connections, format: String.init)
        found += Self.capWidening(rules.bytesPerSession, "bytes_per_session", network.limits.bytesPerSession, parent.limits.bytesPerSession,
                                  format: formatSize)
        return found
    }

    /// A cap no higher than the parent's; none (unlimited) is wider than any.
    static func capWidening(_ rule: RuleRef, _ name: String, _ cap: Int?, _ parentCap: Int?, format: (Int) -> String) -> [Widening] {
        guard let parentCap else { return [] }
        guard let cap else { return [Widening(rule: rule, reason: "\(name) is unlimited, the parent's is \(format(parentCap))")] }
        return cap > parentCap ? [Widening(rule: rule, reason: "\(name) \(format(cap)) is more than the parent's \(format(parentCap))")] : []
    }

    /// Nothing when one parent rule covers the child's in every field and no parent rule that
    /// may apply first logs content the child's would not; else the first shortfall against the
    /// first parent rule whose host covers the child's.
    private func egressWidening(_ index: Int, _ parents: [EgressRule]) -> Widening? {
        let child = network.egress[index]
        guard let cover = parents.firstIndex(where: { child.host.isWithin($0.host) && Self.egressShortfall(child, $0) == nil }) else {
            guard let parent = parents.first(where: { child.host.isWithin($0.host) }), let shortfall = Self.egressShortfall(child, parent) else {
                return Widening(rule: child.rule, reason: "host \(quoted(child.host.description)) is not within any of the parent's network.egress rules")
            }
            return Widening(rule: child.rule, reason: "\(shortfall) is not within the parent's \(parent.rule), which allows \(Self.allowed(shortfall, parent))")
        }
        // The evaluator applies the first rule that fits, so the parent's rules up to the covering
        // one may apply where the child's does; those that one of the child's earlier rules
        // covers whole never do (that rule applies first in the child).
        guard !child.logContent else { return nil }
        let earlier = network.egress[..<index]
        for parent in parents[...cover] where parent.logContent && parent.host.mayOverlap(child.host) {
            if earlier.contains(where: { parent.host.isWithin($0.host) && Self.egressShortfall(parent, $0) == nil }) { continue }
            return Widening(rule: child.rule, reason: "log_content false where the parent's \(parent.rule) logs content")
        }
        return nil
    }

    private enum EgressField: CustomStringConvertible {
        case scheme(EgressRuleScheme), ports([PortRange]), methods(Set<String>?), paths([Glob]?), special(IPNetwork)

        var description: String {
            switch self {
            case .scheme(let scheme): "scheme \(scheme.rawValue)"
            case .ports(let ports): "ports \(ports.map(\.description).joined(separator: ", "))"
            case .methods(let methods): methods.map { "methods \($0.sorted().joined(separator: ", "))" } ?? "any method"
            case .paths(let paths): paths.map { "paths \(AgentPolicy.patternList($0.map(\.pattern)))" } ?? "any path"
            case .special(let block): "reaching the special block \(block)"
            }
        }
    }

    private static func allowed(_ field: EgressField, _ parent: EgressRule) -> String {
        switch field {
        case .scheme: parent.scheme.rawValue
        case .ports: parent.ports.map(\.description).joined(separator: ", ")
        case .methods: parent.methods.map { $0.sorted().joined(separator: ", ") } ?? "any"
        case .paths: parent.paths.map { patternList($0.map(\.pattern)) } ?? "any"
        case .special: "only the public addresses of \(parent.host)"
        }
    }

    private static func egressShortfall(_ child: EgressRule, _ parent: EgressRule) -> EgressField? {
        if !child.scheme.isWithin(parent.scheme) { return .scheme(child.scheme) }
        if !PortRange.covers(parent.ports, child.ports) { return .ports(child.ports) }
        // Methods and paths bind only http requests; a rule without them allows any.
        if child.scheme != .tls {
            if let methods = parent.methods, !(child.methods.map { $0.isSubset(of: methods) } ?? false) { return .methods(child.methods) }
            if let paths = parent.paths, !(child.paths.map { $0.allSatisfy { glob in paths.contains { glob.isWithin($0) } } } ?? false) {
                return .paths(child.paths)
            }
        }
        // A block reaches the special addresses of the most specific special block it lies in;
        // the parent's must lie in that block too to reach them.
        if case .network(let block) = child.host, case .network(let parentBlock) = parent.host, let special = block.specialBlock,
           !parentBlock.isWithin(special) {
            return .special(special)
        }
        return nil
    }

    func brainWidenings(_ parent: Brain?) -> [Widening] {
        guard let brain else { return [] }
        guard let parent else { return [Widening(rule: brain.rule, reason: "the parent allows no Brain calls (it has no brain section)")] }
        var found: [Widening] = []
        if brain.baseURL != parent.baseURL {
            found.append(Widening(rule: brain.rule, reason: "base_url \(brain.baseURL) is not the parent's \(parent.baseURL)"))
        }
        for (index, model) in brain.models.enumerated() where !parent.models.contains(where: { model.isWithin($0) }) {
            found.append(Widening(rule: RuleRef("brain.models[\(index)]", line: brain.modelsRule.line),
                                  reason: "model \(quoted(model.pattern)) is not within any of the parent's brain.models"))
        }
        found += Self.capWidening(brain.maxTokensPerCallRule, "max_tokens_per_call", brain.maxTokensPerCall, parent.maxTokensPerCall, format: String.init)
        found += Self.capWidening(brain.maxTokensPerSessionRule, "max_tokens_per_session", brain.maxTokensPerSession, parent.maxTokensPerSession,
                                  format: String.init)
        found += Self.capWidening(brain.maxRequestsRule, "max_requests", brain.maxRequests, parent.maxRequests, format: String.init)
        if parent.logContent && !brain.logContent {
            found.append(Widening(rule: brain.rule, reason: "log_content false where the parent's brain logs content"))
        }
        return found
    }
}
