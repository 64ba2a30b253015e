import Agents
import Audit
import Crypto
import Doors
import Gateway
import Glibc
import Hands
import Merkle
import Synchronization
import VMM

/// Boots and stops the sub-agents of one `momin run`: each is a VM of its own, launched the
/// way every VM is (`HostedVM`: registry entry, grant carved from its parent's sub-agent
/// budget, jail, momin-vmm), booted from the same kernel and image as the run's VM, and
/// governed by its own policy through a gateway that appends to the run's log.
final class SubAgentVMs: SubAgentLauncher, @unchecked Sendable {
    private let registry: VMRegistry
    private let base: MachineConfiguration
    private let jailing: (String, MachineConfiguration, String) throws -> VMJail?
    private let log: (any AuditSink)?
    private let requestIDs: RequestNumbers
    private let state = Mutex(State())

    private struct State {
        var running: [String: HostedVM] = [:]
        /// VMs being launched, and halts that came meanwhile: such a VM stops as soon as it exists.
        var launching: Set<String> = []
        var halting: Set<String> = []
    }
    /// How long a sub-agent's guest may take to answer its first Doors call.
    static let bootSeconds = 300.0

    init(registry: VMRegistry, base: MachineConfiguration, jailing: @escaping (String, MachineConfiguration, String) throws -> VMJail?,
         log: (any AuditSink)?, requestIDs: RequestNumbers) {
        self.registry = registry
        self.base = base
        self.jailing = jailing
        self.log = log
        self.requestIDs = requestIDs
    }

    func boot(_ plan: SpawnPlan) throws(SpawnRefusal) -> (gateway: ToolGateway, handsSocket: String) {
        var config = base
        config.vcpus = plan.vcpus
        config.memoryMiB = UInt64(plan.memoryMiB)
        config.hostCPUs = nil
        config.entropySeed = nil  // each guest its own entropy from the host's CSPRNG
        let hosted: HostedVM
        state.withLock { _ = $0.launching.insert(plan.name) }
        do {
            hosted = try HostedVM.launch(name: plan.name, parent: plan.parent, registry: registry, config: config,
                                         budget: HostResources.budget(plan.policy, config), jailing: jailing,
                                         timeout: 0, console: false)
        } catch let error as CLIError where error.code == HostResources.noRoom {
            forgetLaunch(plan.name)
            throw .noRoom(error.message)
        } catch let error as CLIError {
            forgetLaunch(plan.name)
            throw .failed(error.message)
        } catch {
            forgetLaunch(plan.name)
            throw .failed("\(error)")
        }
        let cancelled = state.withLock { state in
            state.launching.remove(plan.name)
            state.running[plan.name] = hosted
            return state.halting.remove(plan.name) != nil
        }
        if cancelled {
            let status = stop(plan.name) ?? "gone"
            throw .failed("stopped while it booted (momin-vmm \(status))")
        }
        let doors: DoorsClient
        do { doors = try hosted.connect(seconds: Self.bootSeconds) } catch {
            Run.showTail(of: registry.logPath(plan.name))
            let status = stop(plan.name) ?? "gone"
            throw .failed("\(error) (momin-vmm \(status))")
        }
        let gateway = ToolGateway(agent: plan.name, client: doors, policy: plan.policy, log: log, requestIDs: requestIDs)
        let digest = MerkleHash(bytes: Array(SHA256.hash(data: plan.policySource)))!
        do throws(GatewayError) {
            try gateway.record(Lifecycle.policyLoad(source: "hands spawn by \(plan.parent)", sha256: digest))
            try gateway.record(Lifecycle.vmStart(vm: plan.name))
        } catch {
            _ = stop(plan.name)
            throw .failed(error.description)
        }
        return (gateway, hosted.hostPortSocket(HandsCallProtocol.port))
    }

    func halt(_ name: String, reason: String) {
        guard let status = stop(name) else {
            state.withLock { state in if state.launching.contains(name) { state.halting.insert(name) } }
            return
        }
        do { try log?.append(batch: [.lifecycle(.vmStop(vm: name, reason: "\(reason); momin-vmm \(status)"))]) } catch {
            writeStandardError("momin: sub-agent \(name) stopped, but the audit log did not take the stop: \(error)\n")
        }
    }

    private func forgetLaunch(_ name: String) {
        state.withLock { state in
            state.launching.remove(name)
            state.halting.remove(name)
        }
    }

    /// Stops the VM if this launcher still holds it; how its VMM ended, or nil.
    private func stop(_ name: String) -> String? {
        guard let hosted = state.withLock({ $0.running.removeValue(forKey: name) }) else { return nil }
        return hosted.halt()
    }
}
