import Glibc
import Ledger
import MachineConfig
import Policy

/// The host's share-out among VMs (docs/ledger.md): every VM that momin boots first gets a
/// grant of CPUs and memory from the ledger, which holds for as long as its momin-vmm lives; a
/// request that does not fit is refused with what is free.
///
/// The ledger lives in the runtime directory shared by every momin on this host. The host keeps
/// `reserveCPUs` CPUs and `reserveMiB` MiB for itself (`HostEnvironment`).
public struct HostResources: Sendable {
    public let environment: HostEnvironment

    public init(_ environment: HostEnvironment) { self.environment = environment }

    public func store() throws(HostError) -> LedgerStore {
        LedgerStore(directory: try environment.makeRuntimeDirectory())
    }

    public func pool() throws(HostError) -> HostPool {
        if let invalid = environment.invalidReserve { throw .badInput(invalid) }
        do {
            let inventory = try HostInventory.read(root: environment.inventoryRoot)
            return try HostPool(inventory: inventory, reserveCPUs: environment.reserveCPUs, reserveMiB: environment.reserveMiB)
        } catch {
            throw .failed("cannot take stock of this host's resources: \(error)")
        }
    }

    /// Grants `config`'s vCPUs and memory to the VM `id`, held by this process until
    /// `launched` hands it to the VMM's pid.
    /// `parent` names the VM whose sub-agent budget it comes out of (nil: the host's pool);
    /// `budget` is what it holds for sub-agents of its own.
    public func grant(id: String, parent: String? = nil, _ config: MachineConfiguration,
                      budget: SubAgentRequest = .none) throws(HostError) -> Grant {
        let request = ResourceRequest(vcpus: config.vcpus, memoryMiB: Int(config.memoryMiB), subAgents: budget)
        let pool = try pool()
        let store = try store()
        do {
            return try store.update(pool: pool) { (ledger: inout ResourceLedger) throws(LedgerError) in
                try ledger.grant(id: id, parent: parent, request: request, pid: getpid())
            }.value
        } catch .refused(let why) {
            throw .noRoom("no room for VM \(id) \(parent.map { "under \($0)" } ?? "on this host"): \(why)")
        } catch {
            throw .failed("resource ledger: \(error)")
        }
    }

    /// The grant now lives as long as the VMM (`pid`) does: a VMM that dies frees it.
    public func launched(id: String, pid: pid_t) throws(HostError) {
        let pool = try pool()
        do {
            _ = try store().update(pool: pool) { (ledger: inout ResourceLedger) throws(LedgerError) in
                try ledger.setPID(pid, start: ProcessStat.startTime(of: pid), for: id)
            }
        } catch let error as HostError {
            throw error
        } catch {
            throw .failed("resource ledger: \(error)")
        }
    }

    /// Frees the VM's grant (and its sub-agents'); one already reaped is not an error, and one
    /// that cannot be freed is said (`warn`): the ledger reaps it once its VMM is gone.
    public func release(id: String) {
        do {
            let pool = try pool()
            _ = try store().update(pool: pool) { (ledger: inout ResourceLedger) throws(LedgerError) -> [String] in
                guard ledger.grant(id) != nil else { return [] }
                return try ledger.release(id: id)
            }
        } catch {
            environment.warn("could not free VM \(id)'s resources in the ledger: \(error)")
        }
    }

    /// What a VM governed by `policy` holds for its sub-agents: the policy's resources less the
    /// VM's own share, for at most `resources.sub_agents` children at a time (none without them).
    public static func budget(_ policy: AgentPolicy?, _ config: MachineConfiguration) -> SubAgentRequest {
        guard let resources = policy?.resources, resources.subAgents > 0 else { return .none }
        return SubAgentRequest(maxCount: resources.subAgents, cpus: max(0, resources.vcpus - config.vcpus),
                               memoryMiB: max(0, resources.memoryMiB - Int(config.memoryMiB)))
    }
}
