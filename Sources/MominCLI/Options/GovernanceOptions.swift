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
        guard let witness else { return }
        guard let audit else { throw ValidationError("--witness \(witness) needs --audit: it witnesses the audit log's heads") }
        if Paths.absolute(witness) == Paths.absolute(audit) { throw ValidationError("--witness \(witness) is the audit log itself") }
    }

    /// The log's options: its key and its witness (docs/audit.md).
    var auditOptions: AuditLog.Options { AuditLog.Options(keyPath: auditKey, witnessPath: witness) }

    /// The policy and its exact bytes; a bad file is bad input. Its resource caps must hold
    /// the machine asked for. Either refusal is a refused run: with --audit it is logged
    /// (`run-refused`, after the `policy-load` of a policy that loaded) before it is thrown.
    /// `vm` names the run, given the policy's agent when it loaded.
    func loadPolicy(for machine: MachineOptions, vm: (_ agent: String?) -> String) throws(HostError) -> LoadedPolicy? {
        guard let policy else { return nil }
        let loaded: LoadedPolicy
        do { loaded = try LoadedPolicy.load(path: policy) } catch { throw refused(error, vm: vm(nil)) }
        do { try loaded.allow(vcpus: machine.vcpus, memoryMiB: machine.memory) } catch {
            throw refused(error, vm: vm(loaded.policy.agent), before: [loaded.loadEvent])
        }
        // A policy with a brain section needs the key the relay will add: a bad one is refused now, before any VM.
        if loaded.policy.brain != nil {
            do { _ = try hostEnvironment().brainCredential() } catch { throw refused(error, vm: vm(loaded.policy.agent), before: [loaded.loadEvent]) }
        }
        return loaded
    }

    /// `refusal`, logged first when there is a log.
    func refused(_ refusal: HostError, vm: String, before: [Lifecycle] = []) -> HostError {
        guard let audit else { return refusal }
        return RefusedRun.record(refusal, vm: vm, before: before, auditPath: audit, options: auditOptions)
    }
}
