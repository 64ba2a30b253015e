import ArgumentParser
import Host

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
    func loadPolicy(for machine: MachineOptions) throws(HostError) -> LoadedPolicy? {
        try policy.map { path throws(HostError) in try LoadedPolicy.load(path: path, vcpus: machine.vcpus, memoryMiB: machine.memory) }
    }
}
