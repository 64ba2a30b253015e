import Agents
import Audit
import Buckets
import Doors
import Egress
import Gateway
import Glibc
import GuestClient
import MachineConfig
import Merkle
import POSIX

/// A session in a fresh microVM: booted, used through the tool gateway, and torn down — what
/// `momin run` and `momin replay` do, and what an API call that runs one command will do.
public enum VMSession {
    /// How a session ended.
    public struct End<T> {
        public var result: Result<T, GatewayError>
        /// How momin-vmm ended ("exited 0", "killed by signal 9").
        public var vmStatus: String
        /// The VM's console and momin-vmm's messages (kept until the process exits).
        public var consoleLog: String
    }

    /// What a session is, besides its machine.
    public struct Options: Sendable {
        public var name: String
        public var jail: VMJail.Mode = .jailed
        /// Seconds the VM may run, and the wait for its guest to answer (0: no limit; the wait is
        /// then 300 s).
        public var timeout: Double = 0
        /// The console to our stderr, not to the VM's console.log.
        public var console = false
        /// SIGINT, SIGTERM and SIGHUP stop the VM, and so the session and every sub-agent (for
        /// a process whose only work is this session: momin run).
        public var stopOnSignals = false
        public var policy: LoadedPolicy?
        /// Where `log` writes, for messages.
        public var auditPath: String?
        /// Host files to attach as disks, judged by `policy` before the VM is launched.
        public var disks: [DiskRequest] = []
        /// A root image (`--image`), the first disk, chosen by whoever starts the run (like the
        /// kernel: not judged by the agent's policy), and the size of its writable layer.
        public var rootImage: String?
        public var overlaySize: String?

        public init(name: String) { self.name = name }
    }

    /// Boots `config` as VM `options.name` in a momin-vmm child, connects to its Doors server and
    /// runs `body` with a gateway (policy and log as given, lifecycle entries included), then
    /// stops the VM and closes the log, signing a head over the session. A launch the host
    /// refuses (no room, the name taken) is logged as `run-refused` before it is thrown.
    ///
    /// With `agents`, the VM's hands calls are served (given momin.hands on its kernel command
    /// line): buckets (`store`), doors and sub-agents, each sub-agent its own VM under this one;
    /// every sub-agent is stopped before the VM is. The store is closed at the end.
    public static func run<T>(_ config: MachineConfiguration, _ options: Options, log: AuditLog?, agents: AgentHosting?,
                              registry: VMRegistry, environment: HostEnvironment,
                              _ body: (ToolGateway) throws(GatewayError) -> T) throws(HostError) -> End<T> {
        let name = options.name
        // Blocked here before any thread starts (each inherits the mask; the VMMs get theirs
        // cleared), and taken by one thread below.
        let stops = options.stopOnSignals ? SignalRelay.blockStopSignals() : nil
        var launch = HostedVM.Launch(name: name)
        launch.budget = HostResources.budget(options.policy?.policy, config)
        launch.jail = options.jail
        launch.timeout = options.timeout
        launch.console = options.console
        let hosted: HostedVM
        do throws(HostError) {
            // Each disk judged, opened and digested before anything is taken for the VM.
            launch.disks = try AttachedDisk.openAll(rootImage: options.rootImage, disks: options.disks, scratch: nil,
                                                    policy: options.policy?.policy)
            launch.overlaySize = options.overlaySize
            hosted = try HostedVM.launch(launch, config: config, registry: registry, environment: environment)
        } catch {
            guard let log else { throw error }
            throw RefusedRun.record(error, vm: name, in: log)
        }
        let disks = launch.disks
        if let stops {
            let vmPID = hosted.vm.pid
            let warn = environment.warn
            try? POSIXThread.detach(name: "signals") {
                var set = stops
                var signal: Int32 = 0
                guard sigwait(&set, &signal) == 0 else { return }
                warn("signal \(signal): stopping VM \(name) and every sub-agent under it")
                kill(vmPID, SIGTERM)
            }
        }
        // The directory goes when the process exits (a run exits with the command's status,
        // which skips defers); until then its console log can still be shown.
        let logPath = registry.logPath(name)
        RuntimeDirectory(path: registry.directory(name)).removeAtExit()
        let waitSeconds = options.timeout > 0 ? options.timeout : 300
        var gateway: ToolGateway?
        var tree: AgentTree?
        let result: Result<T, GatewayError>
        do throws(GatewayError) {
            let doors: DoorsClient
            do { doors = try hosted.connect(seconds: waitSeconds) } catch { throw .guest(error) }
            // A log may be appended to by other processes too (another run, a long-lived VM).
            let requestIDs = options.auditPath.map { RequestNumbers.shared(withLog: $0) } ?? RequestNumbers()
            // One budget for the whole tree: every sub-agent's calls count against the root's limits too.
            let budget = options.policy.map { TreeLimits.inMemory(root: name, limits: $0.policy.limits) }
            let through = ToolGateway(agent: name, client: doors, policy: options.policy?.policy, log: log,
                                      limits: options.policy.flatMap { loaded in budget?.session(name, limits: loaded.policy.limits) },
                                      requestIDs: requestIDs)
            gateway = through
            if let loaded = options.policy { try through.record(loaded.loadEvent) }
            try through.record(.vmStart(vm: name))
            for disk in disks { try through.record(.diskAttach(disk.state(vm: name, digest: disk.attachDigest))) }
            if let agents {
                let wiring = AgentTreeHost.Wiring(root: name, registry: registry, environment: environment, base: config,
                                                  jail: options.jail)
                do {
                    tree = try AgentTreeHost.start(wiring, session: through.session, store: agents.store, log: log,
                                                   requestIDs: requestIDs, budget: budget, disks: disks.compactMap(\.held), tape: agents.tape)
                } catch { throw .limitState("cannot serve the VM's hands calls: \(error)") }
            }
            result = .success(try body(through))
        } catch {
            result = .failure(error)
        }
        tree?.shutDown(root: name, reason: "the run ended")
        let vmStatus = hosted.halt(keepDirectory: true)
        do {
            try gateway?.record(.vmStop(vm: name, reason: "momin-vmm \(vmStatus)"))
            // A read-write disk as the VM left it; then every disk's descriptor (and lock) goes.
            for disk in disks where disk.request.writable {
                var digest: MerkleHash?
                do { digest = try disk.detachDigest() } catch { environment.warn("\(error)") }
                try gateway?.record(.diskDetach(disk.state(vm: name, digest: digest)))
            }
            for disk in disks { disk.close() }
            try log?.close()  // signs a head over everything this session appended
        } catch {
            // The calls have run, but their record is incomplete: that is a failure to report.
            throw .vmFailed("audit log \(options.auditPath ?? ""): \(error)")
        }
        do { try agents?.store?.close() } catch {  // signs each namespace's head
            throw .vmFailed("bucket store: \(error)")
        }
        return End(result: result, vmStatus: vmStatus, consoleLog: logPath)
    }
}

/// What a session serves its VM's hands calls with.
public struct AgentHosting {
    public var store: BucketStore?
    /// A recorded session's tape (docs/replay.md): `momin run --record` keeps the root agent's
    /// exchanges with the world, `momin replay` answers from them.
    public var tape: SessionTape?

    public init(store: BucketStore?, tape: SessionTape? = nil) {
        self.store = store
        self.tape = tape
    }
}
