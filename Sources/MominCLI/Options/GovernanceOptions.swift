import ArgumentParser
import Audit
import Host

/// `--policy`, `--audit`, `--audit-key` and `--witness`, as `momin run` and `momin start` take them.
struct GovernanceOptions: ParsableArguments {
    @Option(help: "A policy file (YAML or JSON, docs/policy.md) that every tool call must pass.")
    var policy: String?

    @Option(help: "An audit log (SQLite, docs/audit.md) to append every call, decision and result to.")
    var audit: String?

    @Option(help: "The audit log's signing key (default: the log's path + .key, made on first use).")
    var auditKey: String?

    @Option(help: "A file (kept apart from the audit log) that every head signed over the log is appended to, one JSON line each, for momin audit verify --head.")
    var witness: String?

    // ValidationError, not CLIError: ArgumentParser passes only that on as bad input (exit 2).
    func validate() throws {
        do { try request.check() } catch { throw ValidationError(error.message) }
    }

    /// These options as the Host library takes them.
    var request: GovernanceRequest { GovernanceRequest(policy: policy, audit: audit, auditKey: auditKey, witness: witness) }

    /// The log's options: its key and its witness (docs/audit.md).
    var auditOptions: AuditLog.Options { AuditLog.Options(keyPath: auditKey, witnessPath: witness) }

    /// The policy, loaded and checked against the machine (`GovernanceRequest.loadPolicy`).
    func loadPolicy(for machine: MachineOptions, vm: (_ agent: String?) -> String) throws(HostError) -> LoadedPolicy? {
        try request.loadPolicy(for: machine.request, environment: hostEnvironment(), vm: vm)
    }

}
