import Doors
import Glibc
import GuestClient
import Ledger
import MachineConfig
import POSIX
import Synchronization

/// Where momin-init serves Doors (kernel parameter momin.doors).
public let guestDoorsPort: UInt32 = 1024

/// One microVM this process launches and owns, in the order every launch takes: a registry
/// directory (so `momin ps` and `momin stop` see it), a grant from the ledger (under its
/// parent's, for a sub-agent), its jail, then momin-vmm; the grant passes to the VMM's pid once
/// it runs. `halt` undoes it all. Whatever fails on the way gives back what was taken.
public final class HostedVM: @unchecked Sendable {
    public let name: String
    public let registry: VMRegistry
    public let config: MachineConfiguration
    public let vm: ChildVMM
    private let jail: VMJail?
    private let resources: HostResources
    /// This process's end of the VM's liveness pair: while it is open the VM runs; the process
    /// dying closes it, and the VM stops (nil for a detached VM).
    private let liveness: Int32?
    /// How momin-vmm ended, once `halt` has stopped it; the lock makes a second halt wait for the first.
    private let halted = Mutex<String?>(nil)

    private init(name: String, registry: VMRegistry, config: MachineConfiguration, vm: ChildVMM, jail: VMJail?,
                 resources: HostResources, liveness: Int32?) {
        self.name = name
        self.registry = registry
        self.config = config
        self.vm = vm
        self.jail = jail
        self.resources = resources
        self.liveness = liveness
    }

    deinit { if let liveness { close(liveness) } }

    /// The socket directory's path for a guest-initiated vsock port (docs/vsock.md).
    public func hostPortSocket(_ port: UInt32) -> String { registry.hostPortSocket(name, port: port) }

    /// What a launch asks for besides the machine.
    public struct Launch: Sendable {
        public var name: String
        /// The VM whose sub-agent budget this one comes out of; nil for a top-level VM.
        public var parent: String?
        /// What this VM holds for sub-agents of its own.
        public var budget: SubAgentRequest = .none
        public var jail: VMJail.Mode = .jailed
        /// Seconds momin-vmm lets the guest run (0: no limit).
        public var timeout: Double = 0
        /// The console to our stderr, not to the VM's console.log.
        public var console = false
        /// The VMM gets a session of its own and outlives this process (`momin start`).
        public var detached = false
        /// Disks already opened and judged (`AttachedDisk.open`), /dev/vda first. The VMM gets
        /// their descriptors; named ones are mounted by momin-init (docs/disks.md).
        public var disks: [AttachedDisk] = []
        /// The writable layer's size over a root image among `disks` (nil: momin-init's default).
        public var overlaySize: String?

        public init(name: String, parent: String? = nil) {
            self.name = name
            self.parent = parent
        }
    }

    /// Boots `base` as `launch.name`. `prepare` runs on the new registry directory before
    /// anything else is taken (`momin start` keeps the VM's governance there).
    public static func launch(_ launch: Launch, config base: MachineConfiguration, registry: VMRegistry,
                              environment: HostEnvironment,
                              prepare: ((String) throws(HostError) -> Void)? = nil) throws(HostError) -> HostedVM {
        let name = launch.name
        try VMRegistry.validate(name)
        switch registry.state(name) {
        case .running(let pid): throw .badInput("a VM named \(name) is already running (momin-vmm pid \(pid)); choose another name")
        case .starting(let launcher): throw .badInput("a VM named \(name) is being started (by pid \(launcher)); choose another name")
        case .stale(let why):
            VMControl(registry: registry, environment: environment).free(name)
            environment.warn("cleaned the stale state of VM \(name) (\(why))")
        case .absent: break
        }
        let dir = registry.directory(name)
        // Who is launching it, before the directory exists: until the pid is recorded, a look
        // at the registry (momin ps) sees a VM starting, not stale state to clean.
        try registry.markLaunching(name)
        defer { registry.clearLaunching(name) }
        guard mkdir(dir, 0o700) == 0 else { throw .vmFailed("cannot create \(dir): \(describeErrno())") }
        let resources = HostResources(environment)
        var config = base
        config.vsock = VsockConfiguration(guestCID: 3, socketPath: registry.socketPath(name))
        config.disks = AttachedDisk.configurations(launch.disks)
        let mounts = AttachedDisk.commandLineWords(launch.disks, overlaySize: launch.overlaySize)
        if !mounts.isEmpty { config.commandLine += " " + mounts.joined(separator: " ") }
        let jail: VMJail?
        do throws(HostError) {
            try prepare?(dir)
            if let parent = launch.parent { try SmallFiles.write(dir + "/parent", parent + "\n") }
            config.hostCPUs = try resources.grant(id: name, parent: launch.parent, config, budget: launch.budget).cpus
            jail = try VMJail.make(launch.jail, vm: name, config, socketDirectory: registry.socketDirectory(name),
                                   environment: environment)
            if let jail { try SmallFiles.write(dir + "/jail", "\(jail.id) \(jail.uid)\n") }
        } catch {
            resources.release(id: name)
            registry.remove(name)
            throw error
        }
        func giveBack() {
            jail?.release()
            resources.release(id: name)
            registry.remove(name)
        }
        let logFD = launch.console ? dup(2) : open(registry.logPath(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard logFD >= 0 else {
            let why = describeErrno()
            giveBack()
            throw .vmFailed("cannot open \(registry.logPath(name)): \(why)")
        }
        let started: VMMLauncher.Started
        do throws(HostError) {
            started = try VMMLauncher(environment).spawn(config, jail: jail, timeout: launch.timeout, logFD: logFD,
                                                         newSession: launch.detached, disks: launch.disks.map(\.fd))
        } catch {
            close(logFD)
            giveBack()
            throw error
        }
        close(logFD)
        let pid = started.pid
        let vm = ChildVMM(pid: pid)
        jail?.launched(pid: pid)
        // Freed however this ends: released at halt, or reaped once the VMM is gone.
        func stopAndGiveBack() {
            _ = vm.stop()
            if let liveness = started.liveness { close(liveness) }
            giveBack()
        }
        do throws(HostError) { try resources.launched(id: name, pid: pid) } catch {
            // A detached VM would outlive the grant held by this process: it does not start.
            if launch.detached {
                stopAndGiveBack()
                throw error
            }
            environment.warn("\(error); the grant stays with this process until it ends")
        }
        do throws(HostError) {
            try SmallFiles.write(dir + "/pid", "\(pid)\n")
            try SmallFiles.write(dir + "/info", "\(config.vcpus) \(config.memoryMiB)\n")
        } catch {
            stopAndGiveBack()
            throw error
        }
        return HostedVM(name: name, registry: registry, config: config, vm: vm, jail: jail, resources: resources,
                        liveness: started.liveness)
    }

    /// Connects to momin-init's Doors server, waiting for the guest to come up.
    public func connect(seconds: Double) throws(GuestCallError) -> DoorsClient {
        let vm = self.vm
        return try DoorsClient(socketPath: config.vsock!.socketPath, port: guestDoorsPort, seconds: seconds, giveUp: { !vm.isRunning })
    }

    /// Stops the VM (SIGTERM, SIGKILL after 10 s) and frees its jail uid and grant; the
    /// registry directory goes too unless `keepDirectory` (a console log still to show).
    /// Returns how momin-vmm ended. Safe to call more than once.
    @discardableResult
    public func halt(keepDirectory: Bool = false) -> String {
        halted.withLock { halted in
            if let halted { return halted }
            let status = vm.stop()
            jail?.release()
            resources.release(id: name)
            if !keepDirectory { registry.remove(name) }
            halted = status
            return status
        }
    }
}
