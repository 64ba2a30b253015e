import Agents
import Audit
import Doors
import Gateway
import Glibc
import GuestClient
import MachineConfig
import Synchronization

/// Boots and stops the sub-agents of one agent tree: each is a VM of its own, launched the way
/// every VM is (`HostedVM`: registry entry, grant carved from its parent's sub-agent budget,
/// jail, momin-vmm), booted from the same kernel and image as the tree's root, and governed by
/// its own policy through a gateway that appends to the tree's log.
public final class SubAgentVMs: SubAgentLauncher, @unchecked Sendable {
    private let registry: VMRegistry
    private let environment: HostEnvironment
    private let base: MachineConfiguration
    private let jail: VMJail.Mode
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

    public init(registry: VMRegistry, environment: HostEnvironment, base: MachineConfiguration, jail: VMJail.Mode,
                log: (any AuditSink)?, requestIDs: RequestNumbers) {
        self.registry = registry
        self.environment = environment
        self.base = base
        self.jail = jail
        self.log = log
        self.requestIDs = requestIDs
    }

    public func boot(_ plan: SpawnPlan) throws(SpawnRefusal) -> (gateway: ToolGateway, handsSocket: HandsSocketPlace) {
        var config = base
        config.vcpus = plan.vcpus
        config.memoryMiB = UInt64(plan.memoryMiB)
        config.hostCPUs = nil
        config.entropySeed = nil  // each guest its own entropy from the host's CSPRNG
        var launch = HostedVM.Launch(name: plan.name, parent: plan.parent)
        launch.budget = HostResources.budget(plan.policy, config)
        launch.jail = jail
        let hosted: HostedVM
        // The parent's disks it was given, opened again here read-only, and judged again by its
        // own policy on the host's paths (the root image aside, as for any VM).
        let image = plan.disks.first(where: \.isRoot)
        let disks: [AttachedDisk]
        do {
            disks = try AttachedDisk.openAll(rootImage: image?.path,
                                             disks: plan.disks.filter { !$0.isRoot }.map { DiskRequest(path: $0.path, name: $0.name) },
                                             scratch: nil, policy: plan.policy)
        } catch { throw .failed(error.message) }
        launch.disks = disks
        state.withLock { _ = $0.launching.insert(plan.name) }
        do {
            hosted = try HostedVM.launch(launch, config: config, registry: registry, environment: environment)
        } catch {
            forgetLaunch(plan.name)
            throw error.kind == .noRoom ? .noRoom(error.message) : .failed(error.message)
        }
        // Its VMM holds them (and their shared locks) now.
        for disk in disks { disk.close() }
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
            ConsoleLog.showTail(of: registry.logPath(plan.name), warn: environment.warn)
            let status = stop(plan.name) ?? "gone"
            throw .failed("\(error) (momin-vmm \(status))")
        }
        let gateway = ToolGateway(agent: plan.name, client: doors, policy: plan.policy, log: log, limits: plan.limits,
                                  requestIDs: requestIDs)
        let policy = LoadedPolicy(policy: plan.policy, source: plan.policySource, path: "hands spawn by \(plan.parent)")
        do throws(GatewayError) {
            try gateway.record(policy.loadEvent)
            try gateway.record(Lifecycle.vmStart(vm: plan.name))
            for disk in disks { try gateway.record(.diskAttach(disk.state(vm: plan.name, digest: disk.attachDigest))) }
        } catch {
            _ = stop(plan.name)
            throw .failed(error.description)
        }
        return (gateway, registry.handsSocket(plan.name))
    }

    public func halt(_ name: String, reason: String) {
        guard let status = stop(name) else {
            state.withLock { state in if state.launching.contains(name) { state.halting.insert(name) } }
            return
        }
        do { try log?.append(batch: [.lifecycle(.vmStop(vm: name, reason: "\(reason); momin-vmm \(status)"))]) } catch {
            environment.warn("sub-agent \(name) stopped, but the audit log did not take the stop: \(error)")
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
