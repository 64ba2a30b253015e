import Glibc
import Hands
import Ledger
import Synchronization
import VMM

/// One microVM this process launches and owns, in the order every launch takes: a registry
/// directory (so `momin ps` and `momin stop` see it), a grant from the ledger (under its
/// parent's, for a sub-agent), its jail, then momin-vmm; the grant passes to the VMM's pid once
/// it runs. `halt` undoes it all. Whatever fails on the way gives back what was taken.
final class HostedVM: @unchecked Sendable {
    let name: String
    let registry: VMRegistry
    let config: MachineConfiguration
    let vm: ChildVMM
    private let jail: VMJail?
    /// How momin-vmm ended, once `halt` has stopped it; the lock makes a second halt wait for the first.
    private let halted = Mutex<String?>(nil)

    private init(name: String, registry: VMRegistry, config: MachineConfiguration, vm: ChildVMM, jail: VMJail?) {
        self.name = name
        self.registry = registry
        self.config = config
        self.vm = vm
        self.jail = jail
    }

    /// The socket directory's path for a guest-initiated vsock port (docs/vsock.md).
    func hostPortSocket(_ port: UInt32) -> String { registry.socketPath(name) + "_\(port)" }

    /// Boots `base` as VM `name`. The console goes to the VM's console.log, or to our stderr
    /// with `console`. `detached`: the VMM gets a session of its own and outlives this process
    /// (`momin start`). `prepare` runs on the new registry directory before anything else is
    /// taken (`momin start` keeps the VM's governance there).
    static func launch(name: String, parent: String?, registry: VMRegistry, config base: MachineConfiguration,
                       budget: SubAgentRequest, jailing: (String, MachineConfiguration, String) throws -> VMJail?,
                       timeout: Double, console: Bool, detached: Bool = false,
                       prepare: ((String) throws -> Void)? = nil) throws -> HostedVM {
        try VMRegistry.validate(name)
        switch registry.state(name) {
        case .running(let pid): throw CLIError.usage("a VM named \(name) is already running (momin-vmm pid \(pid)); choose another name")
        case .stale(let why):
            freeVM(registry, name)
            writeStandardError("momin: cleaned the stale state of VM \(name) (\(why))\n")
        case .absent: break
        }
        let dir = registry.directory(name)
        guard mkdir(dir, 0o700) == 0 else {
            throw CLIError(message: "cannot create \(dir): \(String(cString: strerror(errno)))", code: Run.vmFailed)
        }
        var config = base
        config.vsock = VsockConfiguration(guestCID: 3, socketPath: registry.socketPath(name))
        let jail: VMJail?
        do {
            try prepare?(dir)
            if let parent { try writeSmallFile(dir + "/parent", parent + "\n") }
            config.hostCPUs = try HostResources.grant(id: name, parent: parent, config, budget: budget).cpus
            jail = try jailing(name, config, registry.socketDirectory(name))
            if let jail { try writeSmallFile(dir + "/jail", "\(jail.id) \(jail.uid)\n") }
        } catch {
            HostResources.release(id: name)
            registry.remove(name)
            throw error
        }
        func giveBack() {
            jail?.release()
            HostResources.release(id: name)
            registry.remove(name)
        }
        let logFD = console ? dup(2) : open(registry.logPath(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard logFD >= 0 else {
            giveBack()
            throw CLIError(message: "cannot open \(registry.logPath(name)): \(String(cString: strerror(errno)))", code: Run.vmFailed)
        }
        let pid: pid_t
        do { pid = try VMMLauncher.spawn(config, jail: jail, timeout: timeout, logFD: logFD, newSession: detached) } catch {
            close(logFD)
            giveBack()
            throw error
        }
        close(logFD)
        let vm = ChildVMM(pid: pid)
        jail?.launched(pid: pid)
        // Freed however this ends: released at halt, or reaped once the VMM is gone.
        do { try HostResources.launched(id: name, pid: pid) } catch {
            // A detached VM would outlive the grant held by this process: it does not start.
            if detached {
                _ = vm.stop()
                giveBack()
                throw error
            }
            writeStandardError("momin: \(error); the grant stays with this process until it ends\n")
        }
        do {
            try writeSmallFile(dir + "/pid", "\(pid)\n")
            try writeSmallFile(dir + "/info", "\(config.vcpus) \(config.memoryMiB)\n")
        } catch {
            _ = vm.stop()
            giveBack()
            throw error
        }
        return HostedVM(name: name, registry: registry, config: config, vm: vm, jail: jail)
    }

    /// Connects to momin-init's Doors server, waiting for the guest to come up.
    func connect(seconds: Double) throws(HandsError) -> DoorsClient {
        let vm = self.vm
        return try DoorsClient(socketPath: config.vsock!.socketPath, port: Run.doorsPort, seconds: seconds, giveUp: { !vm.isRunning })
    }

    /// Stops the VM (SIGTERM, SIGKILL after 10 s) and frees its jail uid and grant; the
    /// registry directory goes too unless `keepDirectory` (a console log still to show).
    /// Returns how momin-vmm ended. Safe to call more than once.
    @discardableResult
    func halt(keepDirectory: Bool = false) -> String {
        halted.withLock { halted in
            if let halted { return halted }
            let status = vm.stop()
            jail?.release()
            HostResources.release(id: name)
            if !keepDirectory { registry.remove(name) }
            halted = status
            return status
        }
    }
}
