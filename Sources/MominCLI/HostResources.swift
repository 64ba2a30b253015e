import Glibc
import Ledger
import Policy
import VMM

/// The host's share-out among VMs (docs/ledger.md): every VM that `momin run` or `momin start`
/// boots first gets a grant of CPUs and memory from the ledger, which holds for as long as its
/// momin-vmm lives; a request that does not fit is refused with what is free.
///
/// The ledger lives in the runtime directory shared by every momin on this host. The host keeps
/// `MOMIN_RESERVE_CPUS` CPUs (default 0) and `MOMIN_RESERVE_MIB` MiB (default 256) for itself.
enum HostResources {
    /// Exit status of a VM the host has no room for (sysexits' EX_TEMPFAIL: try again later).
    static let noRoom: Int32 = 75

    static func store() throws -> LedgerStore {
        LedgerStore(directory: try RuntimeDirectory.base())
    }

    static func pool() throws -> HostPool {
        do {
            let inventory = try HostInventory.read(root: "/")
            return try HostPool(inventory: inventory, reserveCPUs: try environmentInt("MOMIN_RESERVE_CPUS") ?? 0,
                                reserveMiB: try environmentInt("MOMIN_RESERVE_MIB") ?? 256)
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError(message: "cannot take stock of this host's resources: \(error)", code: 1)
        }
    }

    /// Grants `config`'s vCPUs and memory to the VM `id`, held by this process until
    /// `launched` hands it to the VMM's pid.
    /// `parent` names the VM whose sub-agent budget it comes out of (nil: the host's pool);
    /// `budget` is what it holds for sub-agents of its own.
    static func grant(id: String, parent: String? = nil, _ config: MachineConfiguration,
                      budget: SubAgentRequest = .none) throws -> Grant {
        let request = ResourceRequest(vcpus: config.vcpus, memoryMiB: Int(config.memoryMiB), subAgents: budget)
        let pool = try pool()
        let store = try store()
        do {
            return try store.update(pool: pool) { (ledger: inout ResourceLedger) throws(LedgerError) in
                try ledger.grant(id: id, parent: parent, request: request, pid: getpid())
            }.value
        } catch .refused(let why) {
            throw CLIError(message: "no room for VM \(id) \(parent == nil ? "on this host" : "under \(parent!)"): \(why)", code: noRoom)
        } catch {
            throw CLIError(message: "resource ledger: \(error)", code: 1)
        }
    }

    /// The grant now lives as long as the VMM (`pid`) does: a VMM that dies frees it.
    static func launched(id: String, pid: pid_t) throws {
        let pool = try pool()
        do {
            _ = try store().update(pool: pool) { (ledger: inout ResourceLedger) throws(LedgerError) in
                try ledger.setPID(pid, start: ProcessStat.startTime(of: pid), for: id)
            }
        } catch {
            throw CLIError(message: "resource ledger: \(error)", code: 1)
        }
    }

    /// Frees the VM's grant (and its sub-agents'); one already reaped is not an error.
    static func release(id: String) {
        do {
            let pool = try pool()
            _ = try store().update(pool: pool) { (ledger: inout ResourceLedger) throws(LedgerError) -> [String] in
                guard ledger.grant(id) != nil else { return [] }
                return try ledger.release(id: id)
            }
        } catch {
            writeStandardError("momin: could not free VM \(id)'s resources in the ledger: \(error)\n")
        }
    }

    /// What a VM governed by `policy` holds for its sub-agents: the policy's resources less the
    /// VM's own share, for at most `resources.sub_agents` children at a time (none without them).
    static func budget(_ policy: AgentPolicy?, _ config: MachineConfiguration) -> SubAgentRequest {
        guard let resources = policy?.resources, resources.subAgents > 0 else { return .none }
        return SubAgentRequest(maxCount: resources.subAgents, cpus: max(0, resources.vcpus - config.vcpus),
                               memoryMiB: max(0, resources.memoryMiB - Int(config.memoryMiB)))
    }

    private static func environmentInt(_ name: String) throws -> Int? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        guard let number = Int(text), number >= 0 else { throw CLIError.usage("\(name)=\(text) is not a count (a whole number ≥ 0)") }
        return number
    }
}
