/// A policy file that cannot be used: the file, the line and the field (as a path like
/// `tools.exec[2].args[0]`) and what is wrong there.
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String
    /// 1-based; nil when the file could not be read at all.
    public let line: Int?
    /// Empty for errors about the file as a whole (syntax, encoding).
    public let field: String
    public let message: String

    public init(file: String, line: Int?, field: String, message: String) {
        self.file = file
        self.line = line
        self.field = field
        self.message = message
    }

    /// "triage.yaml:14: tools.exec[2].args[0]: pattern "[" is not a valid glob: ..."
    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        if !field.isEmpty { text += ": \(field)" }
        return text + ": " + message
    }
}

public enum PolicyFormat: Sendable {
    case yaml, json
}

extension AgentPolicy {
    /// Reads and validates a policy from text; `file` names it in errors.
    public static func parse(_ text: String, format: PolicyFormat, file: String) throws(PolicyError) -> AgentPolicy {
        let root: SourceNode?
        do {
            root = format == .json ? try JSONReader.read(text) : try YAMLReader.read(text)
        } catch {
            throw PolicyError(file: file, line: error.line, field: "", message: error.message)
        }
        guard let root else { throw PolicyError(file: file, line: 1, field: "", message: "the file is empty") }
        return try PolicyBuilder(file: file).policy(root)
    }
}

/// Validates the tree against the schema (docs/policy.md) and compiles the globs.
struct PolicyBuilder {
    let file: String

    func fail(_ node: SourceNode, _ field: String, _ message: String) -> PolicyError {
        PolicyError(file: file, line: node.line, field: field, message: message)
    }

    // MARK: Schema

    func policy(_ root: SourceNode) throws(PolicyError) -> AgentPolicy {
        let top = try mapping(root, "", keys: ["version", "agent", "description", "tools", "limits", "resources", "network", "brain",
                                                    "packages"])
        guard let versionNode = top["version"] else { throw fail(root, "version", "missing (this momin reads version 1)") }
        let version = try integer(versionNode.node, "version")
        guard Self.supportedVersions.contains(version) else {
            throw fail(versionNode.node, "version", "unsupported version \(version) (this momin reads 1)")
        }
        guard let agentNode = top["agent"] else { throw fail(root, "agent", "missing (the agent's name)") }
        let agent = try string(agentNode.node, "agent")
        guard Self.isValidName(agent) else {
            throw fail(agentNode.node, "agent", "\(quoted(agent)) is not a name: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit")
        }
        let description = try top["description"].map { entry throws(PolicyError) in try string(entry.node, "description") }
        var policy = AgentPolicy(
            file: file, version: version, agent: agent, description: description,
            tools: try top["tools"].map { entry throws(PolicyError) in try tools(entry.node) } ?? Tools(),
            limits: try top["limits"].map { entry throws(PolicyError) in try limits(entry.node) } ?? .defaults,
            resources: try top["resources"].map { entry throws(PolicyError) in try resources(entry.node) } ?? .defaults)
        if let entry = top["network"] { policy.network = try network(entry.node) }
        if let entry = top["brain"] { policy.brain = try brain(entry.node, line: entry.line) }
        if let entry = top["packages"] { policy.packages = try packages(entry.node) }
        return policy
    }

    private static let supportedVersions = AgentPolicy.supportedVersions

    static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count) else { return false }
        func isAlphanumeric(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
        }
        return isAlphanumeric(bytes[0]) && bytes.allSatisfy { isAlphanumeric($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }
    }

    private func tools(_ node: SourceNode) throws(PolicyError) -> Tools {
        let fields = try mapping(node, "tools", keys: ["exec", "files", "buckets", "doors"])
        var tools = Tools()
        if let exec = fields["exec"] {
            tools.execList = RuleRef("tools.exec", line: exec.line)
            for (index, item) in try sequence(exec.node, "tools.exec").enumerated() {
                tools.exec.append(try execRule(item, "tools.exec[\(index)]"))
            }
        }
        if let files = fields["files"] {
            let lists = try mapping(files.node, "tools.files", keys: ["read", "write"])
            if let read = lists["read"] {
                tools.readList = RuleRef("tools.files.read", line: read.line)
                tools.read = try pathRules(read.node, "tools.files.read")
            }
            if let write = lists["write"] {
                tools.writeList = RuleRef("tools.files.write", line: write.line)
                tools.write = try pathRules(write.node, "tools.files.write")
            }
        }
        if let buckets = fields["buckets"] {
            tools.bucketList = RuleRef("tools.buckets", line: buckets.line)
            for (index, item) in try sequence(buckets.node, "tools.buckets").enumerated() {
                tools.buckets.append(try bucketRule(item, "tools.buckets[\(index)]"))
            }
        }
        if let doors = fields["doors"] {
            tools.doorList = RuleRef("tools.doors", line: doors.line)
            for (index, item) in try sequence(doors.node, "tools.doors").enumerated() {
                tools.doors.append(try doorRule(item, "tools.doors[\(index)]"))
            }
        }
        return tools
    }

    private func execRule(_ node: SourceNode, _ field: String) throws(PolicyError) -> ExecRule {
        let fields = try mapping(node, field, keys: ["program", "binary", "args", "env", "cwd"])
        guard let program = fields["program"] else { throw fail(node, field + ".program", "missing (an absolute path or glob)") }
        let rule = RuleRef(field, line: node.line)
        var arguments = ArgumentRule(rule: RuleRef(field + ".args", line: fields["args"]?.line ?? node.line), prefix: [], rest: [], maximumCount: nil)
        if let args = fields["args"] { try self.arguments(args.node, field + ".args", into: &arguments) }
        var env: [EnvironmentPattern] = []
        if let list = fields["env"] {
            for (index, item) in try sequence(list.node, field + ".env").enumerated() {
                env.append(try environmentPattern(item, field + ".env[\(index)]"))
            }
        }
        var cwd: [PathRule]?
        if let list = fields["cwd"] {
            cwd = try pathRules(list.node, field + ".cwd")
            if cwd!.isEmpty { throw fail(list.node, field + ".cwd", "an empty list allows no directory; leave cwd out to allow only \"/\"") }
        }
        let binary = try fields["binary"].map { entry throws(PolicyError) in try glob(entry.node, field + ".binary", kind: .path) }
        return ExecRule(
            rule: rule, program: try glob(program.node, field + ".program", kind: .path), binary: binary,
            arguments: arguments, env: env, cwd: cwd,
            envRule: RuleRef(field + ".env", line: fields["env"]?.line ?? node.line),
            cwdRule: RuleRef(field + ".cwd", line: fields["cwd"]?.line ?? node.line))
    }

    private func arguments(_ node: SourceNode, _ field: String, into rule: inout ArgumentRule) throws(PolicyError) {
        switch node.value {
        case .scalar(let text, let kind) where kind != .null:
            guard text == "any" else {
                throw fail(node, field, "expected \"any\", a list of patterns, or a mapping of prefix, rest and max")
            }
            rule.rest = [.text(try compile("*", node, field, kind: .text))]
        case .sequence(let items):
            for (index, item) in items.enumerated() { rule.prefix.append(try argumentPattern(item, field + "[\(index)]")) }
        case .mapping:
            let fields = try mapping(node, field, keys: ["prefix", "rest", "max"])
            if let prefix = fields["prefix"] {
                for (index, item) in try sequence(prefix.node, field + ".prefix").enumerated() {
                    rule.prefix.append(try argumentPattern(item, field + ".prefix[\(index)]"))
                }
            }
            if let rest = fields["rest"] {
                for (index, item) in try sequence(rest.node, field + ".rest").enumerated() {
                    rule.rest.append(try argumentPattern(item, field + ".rest[\(index)]"))
                }
            }
            if let max = fields["max"] {
                let count = try integer(max.node, field + ".max")
                guard count >= rule.prefix.count, count >= 0 else {
                    throw fail(max.node, field + ".max", "\(count) is fewer than the \(rule.prefix.count) prefix arguments")
                }
                rule.maximumCount = count
            }
        default:
            throw fail(node, field, "expected \"any\", a list of patterns, or a mapping of prefix, rest and max")
        }
    }

    private func argumentPattern(_ node: SourceNode, _ field: String) throws(PolicyError) -> ArgumentPattern {
        let text = try string(node, field)
        if text.hasPrefix("path:") { return .path(try compile(String(text.dropFirst(5)), node, field, kind: .path)) }
        return .text(try compile(text, node, field, kind: .text))
    }

    private func environmentPattern(_ node: SourceNode, _ field: String) throws(PolicyError) -> EnvironmentPattern {
        let text = try string(node, field)
        guard let equals = text.firstIndex(of: "=") else {
            return EnvironmentPattern(name: try compile(text, node, field, kind: .text), value: nil)
        }
        let name = String(text[..<equals])
        let value = String(text[text.index(after: equals)...])
        guard !name.isEmpty else { throw fail(node, field, "\(quoted(text)) has no name before \"=\"") }
        guard !value.isEmpty else { throw fail(node, field, "\(quoted(text)) has no value pattern after \"=\" (write just the name to allow any value)") }
        return EnvironmentPattern(name: try compile(name, node, field, kind: .text), value: try compile(value, node, field, kind: .text))
    }

    private func bucketRule(_ node: SourceNode, _ field: String) throws(PolicyError) -> BucketRule {
        let fields = try mapping(node, field, keys: ["namespace", "operations"])
        guard let namespace = fields["namespace"] else { throw fail(node, field + ".namespace", "missing") }
        guard let operations = fields["operations"] else { throw fail(node, field + ".operations", "missing (put, get, query)") }
        var set = Set<BucketOperation>()
        let items = try sequence(operations.node, field + ".operations")
        if items.isEmpty { throw fail(operations.node, field + ".operations", "an empty list allows nothing; leave the rule out instead") }
        for (index, item) in items.enumerated() {
            let name = try string(item, field + ".operations[\(index)]")
            guard let operation = BucketOperation(rawValue: name) else {
                throw fail(item, field + ".operations[\(index)]", "unknown operation \(quoted(name)) (expected put, get or query)")
            }
            guard set.insert(operation).inserted else { throw fail(item, field + ".operations[\(index)]", "\(name) is listed twice") }
        }
        return BucketRule(rule: RuleRef(field, line: node.line), namespace: try glob(namespace.node, field + ".namespace", kind: .namespace), operations: set)
    }

    private func doorRule(_ node: SourceNode, _ field: String) throws(PolicyError) -> DoorRule {
        let fields = try mapping(node, field, keys: ["door", "send", "receive", "max_message_bytes", "queue_depth", "log_content"])
        guard let door = fields["door"] else { throw fail(node, field + ".door", "missing (a door name or glob)") }
        var rule = DoorRule(
            rule: RuleRef(field, line: node.line), door: try glob(door.node, field + ".door", kind: .text), send: [], receive: [],
            maxMessageBytes: DoorRule.defaultMaxMessageBytes, queueDepth: DoorRule.defaultQueueDepth, logContent: false)
        // Agent names are text globs: "triage.*" matches triage.a and triage.a.b.
        for (key, list) in [("send", \DoorRule.send), ("receive", \DoorRule.receive)] {
            guard let entry = fields[key] else { continue }
            for (index, item) in try sequence(entry.node, field + "." + key).enumerated() {
                rule[keyPath: list].append(try glob(item, field + ".\(key)[\(index)]", kind: .text))
            }
        }
        guard !rule.send.isEmpty || !rule.receive.isEmpty else {
            throw fail(node, field, "allows nothing: give send or receive a list of agent names")
        }
        if let entry = fields["max_message_bytes"] {
            rule.maxMessageBytes = try size(entry.node, field + ".max_message_bytes")
            guard rule.maxMessageBytes <= DoorRule.maximumMessageBytes else {
                throw fail(entry.node, field + ".max_message_bytes",
                           "\(formatSize(rule.maxMessageBytes)) is more than \(formatSize(DoorRule.maximumMessageBytes))")
            }
        }
        if let entry = fields["queue_depth"] {
            rule.queueDepth = try positive(entry.node, field + ".queue_depth")
            guard rule.queueDepth <= DoorRule.maximumQueueDepth else {
                throw fail(entry.node, field + ".queue_depth", "\(rule.queueDepth) is more than \(DoorRule.maximumQueueDepth)")
            }
        }
        if let entry = fields["log_content"] { rule.logContent = try boolean(entry.node, field + ".log_content") }
        return rule
    }

    private func limits(_ node: SourceNode) throws(PolicyError) -> Limits {
        let fields = try mapping(node, "limits", keys: ["cycles", "wall_time", "call_timeout", "output_bytes"])
        var limits = Limits.defaults
        if let entry = fields["cycles"] {
            limits.cycles = try positive(entry.node, "limits.cycles")
            limits.rules.cycles = RuleRef("limits.cycles", line: entry.line)
        }
        if let entry = fields["wall_time"] {
            limits.wallTime = try duration(entry.node, "limits.wall_time")
            limits.rules.wallTime = RuleRef("limits.wall_time", line: entry.line)
        }
        if let entry = fields["call_timeout"] {
            limits.callTimeout = try duration(entry.node, "limits.call_timeout")
            limits.rules.callTimeout = RuleRef("limits.call_timeout", line: entry.line)
        }
        if let entry = fields["output_bytes"] {
            limits.outputBytes = try size(entry.node, "limits.output_bytes")
            limits.rules.outputBytes = RuleRef("limits.output_bytes", line: entry.line)
        }
        if limits.callTimeout > limits.wallTime {
            let at = fields["call_timeout"] ?? fields["wall_time"]!
            throw fail(at.node, "limits.call_timeout", "\(formatDuration(limits.callTimeout)) is longer than wall_time \(formatDuration(limits.wallTime))")
        }
        return limits
    }

    private func resources(_ node: SourceNode) throws(PolicyError) -> Resources {
        let fields = try mapping(node, "resources", keys: ["vcpus", "memory_mib", "gpus", "sub_agents", "disks"])
        var resources = Resources.defaults
        if let entry = fields["vcpus"] {
            resources.vcpus = try positive(entry.node, "resources.vcpus")
            guard resources.vcpus <= Resources.maximumVCPUs else {
                throw fail(entry.node, "resources.vcpus", "\(resources.vcpus) is more than \(Resources.maximumVCPUs)")
            }
            resources.rules.vcpus = RuleRef("resources.vcpus", line: entry.line)
        }
        if let entry = fields["memory_mib"] {
            resources.memoryMiB = try positive(entry.node, "resources.memory_mib")
            resources.rules.memoryMiB = RuleRef("resources.memory_mib", line: entry.line)
        }
        if let entry = fields["gpus"] {
            resources.gpus = try nonNegative(entry.node, "resources.gpus")
            resources.rules.gpus = RuleRef("resources.gpus", line: entry.line)
        }
        if let entry = fields["sub_agents"] {
            resources.subAgents = try nonNegative(entry.node, "resources.sub_agents")
            resources.rules.subAgents = RuleRef("resources.sub_agents", line: entry.line)
        }
        if let entry = fields["disks"] {
            resources.disks = try diskRules(entry.node)
            resources.rules.diskList = RuleRef("resources.disks", line: entry.line)
        }
        return resources
    }

    /// `resources.disks`: a list of `{path: GLOB, mode: ro|rw, bps: N, iops: N}`, mode ro when
    /// left out, the rates (caps on the device's token buckets) none.
    private func diskRules(_ node: SourceNode) throws(PolicyError) -> [DiskRule] {
        var rules: [DiskRule] = []
        for (index, item) in try sequence(node, "resources.disks").enumerated() {
            let field = "resources.disks[\(index)]"
            let entries = try mapping(item, field, keys: ["path", "mode", "bps", "iops"])
            guard let path = entries["path"] else { throw fail(item, field, "a disk rule needs a path") }
            var writable = false
            if let mode = entries["mode"] {
                switch try string(mode.node, field + ".mode") {
                case "ro": writable = false
                case "rw": writable = true
                case let other: throw fail(mode.node, field + ".mode", "expected ro or rw, found \(quoted(other))")
                }
            }
            func rate(_ key: String) throws(PolicyError) -> UInt64? {
                guard let entry = entries[key] else { return nil }
                return UInt64(try positive(entry.node, field + "." + key))
            }
            rules.append(DiskRule(glob: try glob(path.node, field + ".path", kind: .path), writable: writable,
                                  bytesPerSecond: try rate("bps"), operationsPerSecond: try rate("iops"),
                                  rule: RuleRef(field, line: item.line)))
        }
        return rules
    }

    // MARK: Field readers

    typealias Entry = (line: Int, node: SourceNode)

    /// The mapping's entries by key; an unknown or repeated key is an error.
    func mapping(_ node: SourceNode, _ field: String, keys: [String]) throws(PolicyError) -> [String: Entry] {
        guard case .mapping(let pairs) = node.value else { throw fail(node, field, "expected a mapping, found \(kind(node))") }
        var entries: [String: Entry] = [:]
        for pair in pairs {
            let path = field.isEmpty ? pair.key : field + "." + pair.key
            guard keys.contains(pair.key) else {
                throw PolicyError(file: file, line: pair.line, field: path, message: "unknown key (expected one of: \(keys.joined(separator: ", ")))")
            }
            if let earlier = entries[pair.key] {
                throw PolicyError(file: file, line: pair.line, field: path, message: "duplicate key (first on line \(earlier.line))")
            }
            entries[pair.key] = (pair.line, pair.value)
        }
        return entries
    }

    func sequence(_ node: SourceNode, _ field: String) throws(PolicyError) -> [SourceNode] {
        guard case .sequence(let items) = node.value else { throw fail(node, field, "expected a list, found \(kind(node))") }
        return items
    }

    /// Any scalar but null, as written ("no" and "10" stay text).
    func string(_ node: SourceNode, _ field: String) throws(PolicyError) -> String {
        guard case .scalar(let text, let kind) = node.value, kind != .null else { throw fail(node, field, "expected a string, found \(kind(node))") }
        return text
    }

    func integer(_ node: SourceNode, _ field: String) throws(PolicyError) -> Int {
        guard case .scalar(let text, .number) = node.value else { throw fail(node, field, "expected a whole number, found \(kind(node))") }
        guard let value = Int(text) else { throw fail(node, field, "expected a whole number, found \(text)") }
        return value
    }

    func positive(_ node: SourceNode, _ field: String) throws(PolicyError) -> Int {
        let value = try integer(node, field)
        guard value > 0 else { throw fail(node, field, "must be at least 1, not \(value)") }
        return value
    }

    /// true or false; YAML's True/TRUE too, but not its 1.1 yes/no/on/off.
    func boolean(_ node: SourceNode, _ field: String) throws(PolicyError) -> Bool {
        guard case .scalar(let text, .boolean) = node.value else { throw fail(node, field, "expected true or false, found \(kind(node))") }
        return text.lowercased() == "true"
    }

    func nonNegative(_ node: SourceNode, _ field: String) throws(PolicyError) -> Int {
        let value = try integer(node, field)
        guard value >= 0 else { throw fail(node, field, "must not be negative (\(value))") }
        return value
    }

    /// Whole seconds, or a count with one unit: 250ms, 30s, 10m, 2h.
    func duration(_ node: SourceNode, _ field: String) throws(PolicyError) -> Duration {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        let ms = try quantity(node, field, units: units, plainUnit: 1000, what: "a duration such as 90, \"90s\", \"10m\" or \"1h\"")
        return .milliseconds(ms)
    }

    /// Bytes, or a count with a binary unit: 512KiB, 16MiB, 1GiB.
    func size(_ node: SourceNode, _ field: String) throws(PolicyError) -> Int {
        let units: [(String, Int64)] = [("B", 1), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40)]
        return Int(try quantity(node, field, units: units, plainUnit: 1, what: "a size such as 1048576, \"512KiB\" or \"16MiB\""))
    }

    func quantity(_ node: SourceNode, _ field: String, units: [(String, Int64)], plainUnit: Int64, what: String) throws(PolicyError) -> Int64 {
        guard case .scalar(let text, let kind) = node.value, kind != .null, kind != .boolean else {
            throw fail(node, field, "expected \(what), found \(self.kind(node))")
        }
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        let unit = text.dropFirst(digits.count)
        guard !digits.isEmpty, let count = Int64(digits) else { throw fail(node, field, "expected \(what), found \(quoted(text))") }
        let factor: Int64
        if unit.isEmpty && kind == .number {
            factor = plainUnit
        } else if let match = units.first(where: { $0.0 == unit }), kind != .number {
            factor = match.1
        } else {
            throw fail(node, field, "expected \(what), found \(quoted(text))")
        }
        let (value, overflow) = count.multipliedReportingOverflow(by: factor)
        guard !overflow, value <= Int64(Int32.max) * 1000 * 1000 else { throw fail(node, field, "\(text) is too large") }
        guard value > 0 else { throw fail(node, field, "must be more than zero") }
        return value
    }

    func pathRules(_ node: SourceNode, _ field: String) throws(PolicyError) -> [PathRule] {
        var rules: [PathRule] = []
        for (index, item) in try sequence(node, field).enumerated() {
            rules.append(PathRule(glob: try glob(item, field + "[\(index)]", kind: .path), rule: RuleRef(field + "[\(index)]", line: item.line)))
        }
        return rules
    }

    func glob(_ node: SourceNode, _ field: String, kind: Glob.Kind) throws(PolicyError) -> Glob {
        try compile(try string(node, field), node, field, kind: kind)
    }

    func compile(_ pattern: String, _ node: SourceNode, _ field: String, kind: Glob.Kind) throws(PolicyError) -> Glob {
        do {
            return try Glob(pattern, kind: kind)
        } catch {
            throw fail(node, field, "pattern \(quoted(pattern)) is not a valid glob: it \(error.message)")
        }
    }

    func kind(_ node: SourceNode) -> String {
        switch node.value {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .scalar(_, .null): "null"
        case .scalar(_, .boolean): "a boolean"
        case .scalar(_, .number): "a number"
        case .scalar(let text, _): "the text \(quoted(text))"
        }
    }
}
