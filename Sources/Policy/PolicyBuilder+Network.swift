/// The `network` and `brain` sections (docs/policy.md, "network.egress" and "brain").
extension PolicyBuilder {
    func network(_ node: SourceNode) throws(PolicyError) -> Network {
        let fields = try mapping(node, "network", keys: ["egress", "limits"])
        var network = Network()
        if let egress = fields["egress"] {
            network.egressList = RuleRef("network.egress", line: egress.line)
            for (index, item) in try sequence(egress.node, "network.egress").enumerated() {
                network.egress.append(try egressRule(item, "network.egress[\(index)]"))
            }
        }
        if let limits = fields["limits"] {
            let entries = try mapping(limits.node, "network.limits", keys: ["connections", "bytes_per_session"])
            if let entry = entries["connections"] {
                let count = try positive(entry.node, "network.limits.connections")
                guard count <= NetworkLimits.maximumConnections else {
                    throw fail(entry.node, "network.limits.connections", "\(count) is more than \(NetworkLimits.maximumConnections)")
                }
                network.limits.connections = count
                network.limits.rules.connections = RuleRef("network.limits.connections", line: entry.line)
            }
            if let entry = entries["bytes_per_session"] {
                network.limits.bytesPerSession = try size(entry.node, "network.limits.bytes_per_session")
                network.limits.rules.bytesPerSession = RuleRef("network.limits.bytes_per_session", line: entry.line)
            }
        }
        return network
    }

    private func egressRule(_ node: SourceNode, _ field: String) throws(PolicyError) -> EgressRule {
        let fields = try mapping(node, field, keys: ["host", "ports", "scheme", "methods", "paths", "log_content"])
        guard let hostEntry = fields["host"] else { throw fail(node, field + ".host", "missing (a host name glob, an address or a CIDR block)") }
        let hostText = try string(hostEntry.node, field + ".host")
        let host: HostPattern
        switch HostPattern.parse(hostText) {
        case .success(let pattern): host = pattern
        case .failure(let problem): throw fail(hostEntry.node, field + ".host", "\(quoted(hostText)) \(problem)")
        }
        var scheme = EgressRuleScheme.tls
        if let entry = fields["scheme"] {
            let text = try string(entry.node, field + ".scheme")
            guard let parsed = EgressRuleScheme(rawValue: text) else {
                throw fail(entry.node, field + ".scheme", "expected http, tls or any, found \(quoted(text))")
            }
            scheme = parsed
        }
        var ports: [PortRange]
        switch scheme {
        case .tls: ports = [PortRange(443, 443)]
        case .http: ports = [PortRange(80, 80)]
        case .any: ports = [PortRange(80, 80), PortRange(443, 443)]
        }
        if let entry = fields["ports"] {
            let items = try sequence(entry.node, field + ".ports")
            if items.isEmpty { throw fail(entry.node, field + ".ports", "an empty list allows no port; leave ports out for the scheme's default") }
            ports = []
            for (index, item) in items.enumerated() { ports.append(try portRange(item, field + ".ports[\(index)]")) }
        }
        var methods: Set<String>?
        var paths: [Glob]?
        for key in ["methods", "paths"] where fields[key] != nil && scheme != .http {
            throw fail(fields[key]!.node, field + "." + key, "applies only to scheme http (a tls tunnel's requests cannot be read)")
        }
        if let entry = fields["methods"] {
            let items = try sequence(entry.node, field + ".methods")
            if items.isEmpty { throw fail(entry.node, field + ".methods", "an empty list allows nothing; leave methods out to allow any") }
            var set = Set<String>()
            for (index, item) in items.enumerated() {
                let name = try string(item, field + ".methods[\(index)]")
                guard Self.isMethod(name) else {
                    throw fail(item, field + ".methods[\(index)]", "\(quoted(name)) is not a method: 1 to 20 uppercase letters, such as GET")
                }
                guard set.insert(name).inserted else { throw fail(item, field + ".methods[\(index)]", "\(name) is listed twice") }
            }
            methods = set
        }
        if let entry = fields["paths"] {
            let items = try sequence(entry.node, field + ".paths")
            if items.isEmpty { throw fail(entry.node, field + ".paths", "an empty list allows nothing; leave paths out to allow any") }
            paths = []
            for (index, item) in items.enumerated() { paths!.append(try glob(item, field + ".paths[\(index)]", kind: .path)) }
        }
        let logContent = try fields["log_content"].map { entry throws(PolicyError) in try boolean(entry.node, field + ".log_content") } ?? false
        return EgressRule(rule: RuleRef(field, line: node.line), host: host, ports: ports, scheme: scheme, methods: methods, paths: paths,
                          logContent: logContent)
    }

    /// RFC 9110 §9 methods are tokens; those in use are uppercase words.
    static func isMethod(_ name: String) -> Bool {
        (1...20).contains(name.utf8.count) && name.utf8.allSatisfy { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
    }

    /// A port (a number) or a range "N-M" (text), each 1–65535.
    private func portRange(_ node: SourceNode, _ field: String) throws(PolicyError) -> PortRange {
        let what = "expected a port from 1 to 65535 or a range such as \"8000-8099\""
        let text = try string(node, field)
        let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        let numbers = parts.map { part -> UInt16? in
            guard (1...5).contains(part.utf8.count), part.utf8.allSatisfy(IPAddress.isDigit), part.first != "0" else { return nil }
            return UInt16(part)
        }
        guard let lower = numbers.first ?? nil, let upper = numbers.last ?? nil else { throw fail(node, field, "\(what), found \(quoted(text))") }
        guard lower <= upper else { throw fail(node, field, "\(quoted(text)) is a reversed range") }
        return PortRange(lower, upper)
    }

    func brain(_ node: SourceNode, line: Int) throws(PolicyError) -> Brain {
        let fields = try mapping(node, "brain", keys: [
            "base_url", "models", "max_tokens_per_call", "max_tokens_per_session", "max_requests", "log_content",
        ])
        guard let urlEntry = fields["base_url"] else { throw fail(node, "brain.base_url", "missing (the model API's URL, such as https://api.example.com/v1)") }
        let urlText = try string(urlEntry.node, "brain.base_url")
        let baseURL: BaseURL
        switch BaseURL.parse(urlText) {
        case .success(let url): baseURL = url
        case .failure(let problem): throw fail(urlEntry.node, "brain.base_url", "\(quoted(urlText)) \(problem)")
        }
        guard let modelsEntry = fields["models"] else { throw fail(node, "brain.models", "missing (the model names allowed, globs)") }
        let items = try sequence(modelsEntry.node, "brain.models")
        if items.isEmpty { throw fail(modelsEntry.node, "brain.models", "an empty list allows no model; leave the brain section out instead") }
        var models: [Glob] = []
        for (index, item) in items.enumerated() { models.append(try glob(item, "brain.models[\(index)]", kind: .text)) }
        func count(_ key: String) throws(PolicyError) -> (Int?, RuleRef) {
            guard let entry = fields[key] else { return (nil, RuleRef("brain." + key, line: line)) }
            return (try positive(entry.node, "brain." + key), RuleRef("brain." + key, line: entry.line))
        }
        let perCall = try count("max_tokens_per_call")
        let perSession = try count("max_tokens_per_session")
        let requests = try count("max_requests")
        if let call = perCall.0, let session = perSession.0, call > session {
            throw fail(fields["max_tokens_per_call"]!.node, "brain.max_tokens_per_call", "\(call) is more than max_tokens_per_session \(session)")
        }
        return Brain(
            rule: RuleRef("brain", line: line), baseURL: baseURL, models: models, maxTokensPerCall: perCall.0,
            maxTokensPerSession: perSession.0, maxRequests: requests.0,
            logContent: try fields["log_content"].map { entry throws(PolicyError) in try boolean(entry.node, "brain.log_content") } ?? false,
            modelsRule: RuleRef("brain.models", line: modelsEntry.line), maxTokensPerCallRule: perCall.1,
            maxTokensPerSessionRule: perSession.1, maxRequestsRule: requests.1)
    }
}
