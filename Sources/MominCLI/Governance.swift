import ArgumentParser
import Audit
import Crypto
import Gateway
import Glibc
import Hands
import Merkle
import Policy
import POSIX

/// `--policy`, `--audit` and `--audit-key`, as `momin run` and `momin start` take them.
struct GovernanceOptions: ParsableArguments {
    @Option(help: "A policy file (YAML or JSON, docs/policy.md) that every tool call must pass.")
    var policy: String?

    @Option(help: "An audit log (SQLite, docs/audit.md) to append every call, decision and result to.")
    var audit: String?

    @Option(help: "The audit log's signing key (default: the log's path + .key, made on first use).")
    var auditKey: String?

    /// The policy and its exact bytes; a bad file is bad input. Its resource caps must hold
    /// the machine asked for.
    func loadPolicy(for machine: MachineOptions) throws -> LoadedPolicy? {
        guard let policy else { return nil }
        let loaded: (policy: AgentPolicy, source: [UInt8])
        do { loaded = try AgentPolicy.loadWithSource(path: policy) } catch { throw CLIError.usage(error.description) }
        let caps = loaded.policy.resources
        if machine.vcpus > caps.vcpus { throw CLIError.usage("--vcpus \(machine.vcpus) is over the policy's cap of \(caps.vcpus) (resources.vcpus)") }
        if machine.memory > caps.memoryMiB {
            throw CLIError.usage("--memory \(machine.memory) MiB is over the policy's cap of \(caps.memoryMiB) MiB (resources.memory_mib)")
        }
        return LoadedPolicy(policy: loaded.policy, source: loaded.source, path: policy)
    }
}

struct LoadedPolicy {
    var policy: AgentPolicy
    var source: [UInt8]
    var path: String

    /// The policy-load entry: where it came from and the SHA-256 of the bytes parsed.
    var loadEvent: Lifecycle {
        .policyLoad(source: path, sha256: MerkleHash(bytes: Array(SHA256.hash(data: source)))!)
    }
}

/// The governance a long-lived VM was started with, kept in its registry directory so that
/// every later `momin exec`, `momin cp` and `momin stop` applies the same policy (a copy of
/// the exact bytes loaded at `momin start`: editing the file later changes nothing for this
/// VM), appends to the same log, and counts against the same limits.
///
/// Files: `policy.yaml` or `.json` (the copy), `governance` (`agent`, `policy-source`,
/// `policy-copy`, `audit`, `audit-key` lines, each only when it applies) and `limits`
/// (`PersistedLimits`).
struct VMGovernance {
    var agent: String
    var policy: LoadedPolicy?
    var auditPath: String?
    var auditKey: String?
    /// The usage file, when there is a policy to count against.
    var limitsPath: String?

    var log: SharedAuditLog? { auditPath.map { SharedAuditLog(path: $0, keyPath: auditKey) } }

    var limits: PersistedLimits? {
        guard let policy, let limitsPath else { return nil }
        return PersistedLimits(path: limitsPath, limits: policy.policy.limits)
    }

    /// The gateway for one call into the VM.
    func gateway(client: DoorsClient) -> ToolGateway {
        ToolGateway(agent: agent, client: client, policy: policy?.policy, log: log, limits: limits)
    }

    /// Writes the VM's governance at `momin start`, before the VM is reachable.
    static func save(_ governance: VMGovernance, in directory: String) throws {
        var lines = ["agent \(governance.agent)"]
        if let policy = governance.policy {
            // The copy keeps the original's extension, which says how it parses.
            let copy = "policy." + (policy.path.split(separator: ".").last.map(String.init) ?? "yaml")
            try writeBytes(directory + "/" + copy, policy.source)
            lines.append("policy-source \(Rig.absolute(policy.path))")
            lines.append("policy-copy \(copy)")
            try PersistedLimits.create(path: directory + "/limits")
        }
        if let audit = governance.auditPath {
            lines.append("audit \(audit)")
            if let key = governance.auditKey { lines.append("audit-key \(key)") }
        }
        try writeSmallFile(directory + "/governance", lines.joined(separator: "\n") + "\n")
    }

    /// Reads it back; a VM started without governance has none (nil). Damage is an error.
    static func load(from directory: String, name: String) throws -> VMGovernance? {
        guard let text = readSmallFile(directory + "/governance") else { return nil }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else {
                throw CLIError(message: "VM \(name): \(directory)/governance is damaged (line '\(line)')", code: 1)
            }
            fields[String(line[..<space])] = String(line[line.index(after: space)...])
        }
        guard let agent = fields["agent"] else {
            throw CLIError(message: "VM \(name): \(directory)/governance names no agent", code: 1)
        }
        var governance = VMGovernance(agent: agent, auditPath: fields["audit"], auditKey: fields["audit-key"])
        if let source = fields["policy-source"] {
            guard let copyName = fields["policy-copy"], !copyName.contains("/") else {
                throw CLIError(message: "VM \(name): \(directory)/governance names no policy copy", code: 1)
            }
            let copy = directory + "/" + copyName
            let policy: (policy: AgentPolicy, source: [UInt8])
            do { policy = try AgentPolicy.loadWithSource(path: copy) } catch {
                throw CLIError(message: "VM \(name): its policy copy \(copy) no longer loads: \(error)", code: 1)
            }
            governance.policy = LoadedPolicy(policy: policy.policy, source: policy.source, path: source)
            governance.limitsPath = directory + "/limits"
        }
        return governance
    }

    private static func writeBytes(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0, (try? FileIO.writeAll(fd, bytes)) != nil else {
            throw CLIError(message: "cannot write \(path): \(String(cString: strerror(errno)))", code: 1)
        }
        close(fd)
    }
}

