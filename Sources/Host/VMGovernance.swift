import Audit
import Gateway
import Glibc
import GuestClient
import Policy

/// The governance a long-lived VM was started with, kept in its registry directory so that
/// every later `momin exec`, `momin cp` and `momin stop` applies the same policy (a copy of
/// the exact bytes loaded at `momin start`: editing the file later changes nothing for this
/// VM), appends to the same log, and counts against the same limits.
///
/// Files: `policy.yaml` or `.json` (the copy), `governance` (`agent`, `policy-source`,
/// `policy-copy`, `audit`, `audit-key`, `audit-witness` lines, each only when it applies) and
/// `limits` (the usage file of the VM's agent tree, `TreeLimits`, its root named after the VM).
public struct VMGovernance: Sendable {
    public var agent: String
    /// The VM's name: the root of its agent tree's budget.
    public var vm: String
    public var policy: LoadedPolicy?
    public var auditPath: String?
    public var auditKey: String?
    /// The file every head signed over the VM's log is appended to (docs/audit.md, "Witness files").
    public var auditWitness: String?
    /// The usage file, when there is a policy to count against.
    public var limitsPath: String?

    public init(agent: String, vm: String? = nil, policy: LoadedPolicy? = nil, auditPath: String? = nil, auditKey: String? = nil,
                auditWitness: String? = nil) {
        self.agent = agent
        self.vm = vm ?? agent
        self.policy = policy
        self.auditPath = auditPath
        self.auditKey = auditKey
        self.auditWitness = auditWitness
    }

    public var log: SharedAuditLog? { auditPath.map { SharedAuditLog(path: $0, keyPath: auditKey, witnessPath: auditWitness) } }

    /// The VM's limits, counted in its tree's budget with those of every sub-agent it starts.
    public var limits: AgentLimits? {
        guard let policy else { return nil }
        return budget?.session(vm, limits: policy.policy.limits)
    }

    /// The budget of the VM's agent tree, in its usage file.
    public var budget: TreeLimits? {
        guard policy != nil, let limitsPath else { return nil }
        return TreeLimits.file(limitsPath)
    }

    /// Numbers for the calls that go to the VM's log, shared with every other process that
    /// appends to it; counted in memory when there is no log.
    public var requestIDs: RequestNumbers { auditPath.map { RequestNumbers.shared(withLog: $0) } ?? RequestNumbers() }

    /// The gateway for one call into the VM.
    public func gateway(client: DoorsClient) -> ToolGateway {
        ToolGateway(agent: agent, client: client, policy: policy?.policy, log: log, limits: limits, requestIDs: requestIDs)
    }

    /// Writes the VM's governance when it is started, before the VM is reachable.
    public static func save(_ governance: VMGovernance, in directory: String) throws(HostError) {
        var lines = ["agent \(governance.agent)"]
        if let policy = governance.policy {
            // The copy keeps the original's extension, which says how it parses.
            let copy = "policy." + (policy.path.split(separator: ".").last.map(String.init) ?? "yaml")
            try SmallFiles.create(directory + "/" + copy, policy.source)
            lines.append("policy-source \(Paths.absolute(policy.path))")
            lines.append("policy-copy \(copy)")
            do { try TreeLimits.create(path: directory + "/limits", root: governance.vm, limits: policy.policy.limits) } catch {
                throw .failed("\(error)")
            }
        }
        if let audit = governance.auditPath {
            lines.append("audit \(audit)")
            if let key = governance.auditKey { lines.append("audit-key \(key)") }
            if let witness = governance.auditWitness { lines.append("audit-witness \(witness)") }
        }
        try SmallFiles.write(directory + "/governance", lines.joined(separator: "\n") + "\n")
    }

    /// Reads it back; a VM started without governance has none (nil). Damage is an error.
    public static func load(from directory: String, name: String) throws(HostError) -> VMGovernance? {
        guard let text = SmallFiles.read(directory + "/governance") else { return nil }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else {
                throw .failed("VM \(name): \(directory)/governance is damaged (line '\(line)')")
            }
            fields[String(line[..<space])] = String(line[line.index(after: space)...])
        }
        guard let agent = fields["agent"] else {
            throw .failed("VM \(name): \(directory)/governance names no agent")
        }
        var governance = VMGovernance(agent: agent, vm: name, auditPath: fields["audit"], auditKey: fields["audit-key"],
                                      auditWitness: fields["audit-witness"])
        if let source = fields["policy-source"] {
            guard let copyName = fields["policy-copy"], !copyName.contains("/") else {
                throw .failed("VM \(name): \(directory)/governance names no policy copy")
            }
            let copy = directory + "/" + copyName
            let policy: (policy: AgentPolicy, source: [UInt8])
            do { policy = try AgentPolicy.loadWithSource(path: copy) } catch {
                throw .failed("VM \(name): its policy copy \(copy) no longer loads: \(error)")
            }
            governance.policy = LoadedPolicy(policy: policy.policy, source: policy.source, path: source)
            governance.limitsPath = directory + "/limits"
        }
        return governance
    }
}
