import Audit
import Gateway
import Glibc
import GuestClient
import POSIX

/// What can be done to a VM someone else launched (`momin start`): connect to it, stop it and
/// the sub-agents under it, free what a dead one left behind.
public struct VMControl: Sendable {
    public let registry: VMRegistry
    public let environment: HostEnvironment

    public init(registry: VMRegistry, environment: HostEnvironment) {
        self.registry = registry
        self.environment = environment
    }

    /// Frees what a VM held once its momin-vmm is gone (stopped, or died: the stale case): its
    /// cgroup and jail uid, its grant (the ledger would reap it too), and its registry directory.
    public func free(_ name: String) {
        VMJail.releaseRecorded(in: registry.directory(name), environment: environment)
        HostResources(environment).release(id: name)
        registry.remove(name)
    }

    /// Connects to a running VM's momin-init.
    public func connect(_ name: String, seconds: Double = 30) throws(HostError) -> DoorsClient {
        try VMRegistry.validate(name)
        switch registry.state(name) {
        case .absent: throw .badInput("no VM named \(name) (momin ps lists them)")
        case .stale(let why):
            free(name)
            throw .failed("VM \(name) is not running (\(why)); its stale state was cleaned")
        case .starting: throw .failed("VM \(name) is still starting; try again once momin ps says it is running")
        case .running:
            do { return try DoorsClient(socketPath: registry.socketPath(name), port: guestDoorsPort, seconds: seconds) } catch {
                throw .vmFailed("VM \(name): \(error)")
            }
        }
    }

    /// Connects to a running VM through the tool gateway, with the governance it was started
    /// with. A sub-agent's calls go through the run or agent host that started it, under its own
    /// policy and its parent's log, and nowhere else.
    public func governedGateway(_ name: String) throws(HostError) -> ToolGateway {
        if let parent = registry.parent(of: name) {
            throw .badInput("VM \(name) is a sub-agent of \(parent): its tools are reached only through its parent (hands, docs/hands.md)")
        }
        let doors = try connect(name)
        let governance = try VMGovernance.load(from: registry.directory(name), name: name) ?? VMGovernance(agent: name)
        return governance.gateway(client: doors)
    }

    /// Stops a VM and every sub-agent under it, deepest first (SIGTERM to each momin-vmm,
    /// SIGKILL after 10 s), and removes their state. `reason` is what the log's vm-stop says.
    public func stop(_ name: String, reason: String = "momin stop") throws(HostError) {
        try VMRegistry.validate(name)
        if case .absent = registry.state(name) { throw .badInput("no VM named \(name)") }
        for descendant in registry.descendants(of: name) { stopOne(descendant, reason: reason) }
        stopOne(name, reason: reason)
    }

    private func stopOne(_ name: String, reason: String) {
        switch registry.state(name) {
        case .absent: return
        case .stale(let why):
            free(name)
            environment.warn("VM \(name) was not running (\(why)); its stale state was cleaned")
        case .starting(let launcher):
            // Its launcher holds everything it has taken and gives it back if the launch fails.
            environment.warn("VM \(name) is still being started by pid \(launcher); not stopped")
        case .running(let pid):
            let governance = try? VMGovernance.load(from: registry.directory(name), name: name)
            var detached: [DiskState] = []
            defer {
                // The stop is logged after the VM is gone, as a run logs it, and each read-write
                // disk as the VM left it.
                if let log = governance?.log {
                    let events = [AuditEvent.lifecycle(.vmStop(vm: name, reason: reason))] + detached.map { .lifecycle(.diskDetach($0)) }
                    do { try log.append(batch: events) } catch {
                        environment.warn("VM \(name) stopped, but its audit log did not take the stop: \(error)")
                    }
                }
            }
            Processes.terminate(pid)
            // A long-lived VM's agent host stops what is left of its sub-agents and closes its
            // bucket store before the VM's state goes.
            AgentHost.awaitExit(in: registry.directory(name))
            if governance?.log != nil {
                detached = VMDisks.detachStates(vm: name, in: registry.directory(name), warn: environment.warn)
            }
            free(name)
        }
    }
}
