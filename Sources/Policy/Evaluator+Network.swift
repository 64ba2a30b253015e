/// Egress and Brain calls (docs/policy.md, "network.egress" and "brain"). The host resolves
/// names itself; the guest's answers about addresses are never asked.
extension AgentPolicy {
    /// The most addresses one call may carry (a resolver's answer is far shorter).
    public static let maximumResolvedAddresses = 64

    func judgeEgress(host raw: String, port: UInt16, scheme: EgressScheme, request: (method: String, path: String)?,
                     resolved: [IPAddress]) -> Decision {
        guard !network.egress.isEmpty, let list = network.egressList else { return .deny(.defaultDeny, .nothingAllowed("network egress")) }
        let host: HostName.Parsed
        switch HostName.normalize(raw) {
        case .success(let parsed): host = parsed
        case .failure(let problem): return .deny(list, .badHost(host: raw, problem: problem))
        }
        guard port != 0 else { return .deny(list, .malformedCall("port 0 is not a destination")) }
        guard resolved.count <= Self.maximumResolvedAddresses else {
            return .deny(list, .malformedCall("more than \(Self.maximumResolvedAddresses) resolved addresses"))
        }
        var path: String?
        if let request {
            guard PolicyBuilder.isMethod(request.method) else {
                return .deny(list, .malformedCall("method \(quoted(request.method)) is not an HTTP method: 1 to 20 uppercase letters"))
            }
            switch HTTPPath.check(request.path) {
            case .success(let judged): path = judged
            case .failure(let problem): return .deny(list, .badRequestPath(path: request.path, problem: problem.description))
            }
        }
        /// Why `rule`, whose host matched, does not allow this connection or request; nil when it does.
        func shortfall(_ rule: EgressRule, _ name: String) -> Reason? {
            if !rule.scheme.allows(scheme) { return .schemeNotAllowed(host: name, scheme: scheme) }
            if !rule.allowsPort(port) { return .portNotAllowed(host: name, port: port) }
            if let request, let path {
                if let methods = rule.methods, !methods.contains(request.method) { return .methodNotAllowed(host: name, method: request.method) }
                if let globs = rule.paths, !globs.contains(where: { $0.matches(path) }) { return .requestPathNotAllowed(host: name, path: path) }
            }
            return nil
        }
        /// The first rule whose host matches and that allows the rest, else the first shortfall.
        func firstRule(_ name: String, hostMatches: (HostPattern) -> Bool) -> EgressMatch {
            var denial: Decision?
            for rule in network.egress where hostMatches(rule.host) {
                guard let reason = shortfall(rule, name) else { return .allowed(rule) }
                if denial == nil { denial = .deny(rule.rule, reason) }
            }
            return denial.map { .denied($0) } ?? .none
        }
        /// A special address needs a block rule that names it and allows the rest.
        func namedBlock(_ address: IPAddress, _ name: String) -> EgressMatch {
            firstRule(name) { pattern in
                if case .network(let block) = pattern { block.reaches(address) } else { false }
            }
        }
        switch host {
        case .address(let address):
            let name = address.description
            guard resolved.isEmpty || resolved == [address] else {
                return .deny(list, .malformedCall("an address literal resolves only to itself"))
            }
            switch namedBlock(address, name) {
            case .allowed(let rule): return .allow(rule.rule, judged: .addresses([address]))
            case .denied(let denial): return denial
            case .none:
                let kind = address.addressClass
                let held = network.egress.contains { if case .network(let block) = $0.host { block.contains(address.effective) } else { false } }
                return .deny(list, held && kind != .public ? .specialAddress(host: name, address: address, kind: kind) : .hostNotAllowed(host: name))
            }
        case .name(let name):
            let allowing: EgressRule
            switch firstRule(name, hostMatches: { if case .name(let pattern) = $0 { pattern.matches(name) } else { false } }) {
            case .allowed(let rule): allowing = rule
            case .denied(let denial): return denial
            case .none: return .deny(list, .hostNotAllowed(host: name))
            }
            guard !resolved.isEmpty else { return .deny(allowing.rule, .unresolved(host: name)) }
            // A name that resolves to a special address is refused even when the name is allowed.
            for address in resolved where address.addressClass != .public {
                guard case .allowed = namedBlock(address, name) else {
                    return .deny(allowing.rule, .specialAddress(host: name, address: address, kind: address.addressClass))
                }
            }
            return .allow(allowing.rule, judged: .addresses(resolved))
        }
    }

    enum EgressMatch {
        case allowed(EgressRule)
        /// A rule's host matched, but it refuses the port, scheme, method or path.
        case denied(Decision)
        case none
    }

    func judgeBrain(model: String, maxTokens: Int) -> Decision {
        guard let brain else { return .deny(.defaultDeny, .nothingAllowed("Brain calls")) }
        guard (1...Brain.maximumModelNameLength).contains(model.utf8.count), model.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            return .deny(brain.rule, .malformedCall("model name \(quoted(model)) is empty, too long or has spaces or control characters"))
        }
        guard maxTokens > 0 else { return .deny(brain.rule, .malformedCall("max tokens \(maxTokens) is not positive")) }
        guard brain.models.contains(where: { $0.matches(model) }) else { return .deny(brain.modelsRule, .modelNotAllowed(model)) }
        if let limit = brain.maxTokensPerCall, maxTokens > limit {
            return .deny(brain.maxTokensPerCallRule, .tokensOverCallLimit(requested: maxTokens, limit: limit))
        }
        return .allow(brain.rule)
    }
}
