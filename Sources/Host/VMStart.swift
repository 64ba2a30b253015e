import Audit
import Doors
import Images

/// A named microVM that stays up, serving Doors, until it is stopped: what `momin start` and
/// `momin serve`'s create both ask for.
public struct StartRequest: Sendable {
    public var name: String
    public var machine: MachineRequest
    public var governance: GovernanceRequest
    /// A bucket store (SQLite, docs/buckets.md) for the hands bucket calls inside the VM.
    public var buckets: String?
    /// Files written into the VM's registry directory before it boots, for whoever manages it
    /// (`momin serve` keeps its sandbox record there): file name → bytes.
    public var records: [String: [UInt8]] = [:]

    public init(name: String, machine: MachineRequest = MachineRequest(), governance: GovernanceRequest = GovernanceRequest(),
                buckets: String? = nil) {
        self.name = name
        self.machine = machine
        self.governance = governance
        self.buckets = buckets
    }
}

/// Starts named microVMs: everything is checked and judged before anything is taken, the
/// governance is in place before the VM exists, and the VM counts as up once momin-init answers
/// a ping and its agent host serves. What fails on the way is given back, and logged when the
/// VM has a log.
public struct VMStart: Sendable {
    public let environment: HostEnvironment
    public let images: ImageStore

    public init(environment: HostEnvironment, images: ImageStore) {
        self.environment = environment
        self.images = images
    }

    /// Boots `request`'s VM; returns once it serves, its momin-vmm and agent host detached from
    /// this process (they outlive it).
    public func start(_ request: StartRequest) throws(HostError) {
        let name = request.name, machine = request.machine, governance = request.governance
        try VMRegistry.validate(name)
        for file in request.records.keys where file.isEmpty || file.contains("/") || file.hasPrefix(".") {
            throw .badInput("record \(file): not a plain file name")
        }
        try governance.check()
        let disks = try machine.diskRequests()
        let loaded = try governance.loadPolicy(for: machine, environment: environment) { _ in name }
        let registry = try VMRegistry.open(environment)
        if case .running(let pid) = registry.state(name) { throw .badInput("VM \(name) is already running (momin-vmm pid \(pid))") }
        // momin.hands: momin-init relays hands calls to the VM's agent host (momin agent-host).
        let config = try machine.configuration(extraCommandLine: "momin.doors=\(guestDoorsPort) momin.hands=\(HandsCallProtocol.port) momin.egress")
        try VMMLauncher(environment).preflight(config)
        // Long-lived VMs cannot go through the rig: each rig run is its own L2, gone when it ends.
        if let reason = KVMHost.needsRig(kvmPath: config.kvmPath) {
            throw .badInput("\(reason); a long-lived VM needs a KVM that boots stock kernels, so start it inside one rig run, e.g. Scripts/rig -- sh -c 'momin start NAME; momin exec NAME -- CMD'")
        }
        let rootImage = try machine.rootImagePath(in: images)
        // Made now if asked for and new; kept from an earlier start otherwise (docs/disks.md, "Scratch").
        let scratch = try ScratchDisk.prepare(for: name, size: machine.scratch, environment: environment)
        if let scratch, !scratch.made { environment.warn("VM \(name): attaching its scratch disk \(scratch.request.path), kept from an earlier start") }
        var attached: [AttachedDisk] = []

        let governed = VMGovernance(agent: loaded?.policy.agent ?? name, vm: name, policy: loaded,
                                    auditPath: governance.audit.map(Paths.absolute), auditKey: governance.auditKey.map(Paths.absolute),
                                    auditWitness: governance.witness.map(Paths.absolute))
        let settings = HostSettings(config, jail: machine.jail, buckets: request.buckets)
        var launch = HostedVM.Launch(name: name)
        launch.budget = HostResources.budget(loaded?.policy, config)
        launch.jail = machine.jail
        launch.timeout = machine.timeout
        launch.detached = true
        launch.overlaySize = machine.overlay
        let hosted: HostedVM
        do {
            // Each disk judged, opened and digested before anything is taken for the VM.
            attached = try AttachedDisk.openAll(rootImage: rootImage, disks: disks, scratch: scratch?.request, policy: loaded?.policy)
            launch.disks = attached
            hosted = try HostedVM.launch(launch, config: config, registry: registry, environment: environment) { dir throws(HostError) in
                // In place before the VM exists: no call can come through ungoverned. The policy
                // load is logged now, so a log that cannot be written fails the start before boot.
                try VMGovernance.save(governed, in: dir)
                try HostSettings.save(settings, in: dir)
                try VMDisks.save(attached, in: dir)  // for its agent host, and momin stop's log
                for (file, bytes) in request.records { try SmallFiles.create(dir + "/" + file, bytes) }
                do { try governed.log?.append(batch: loaded.map { [.lifecycle($0.loadEvent)] } ?? []) } catch {
                    throw .badInput("audit log: \(error)")
                }
            }
        } catch {
            // A scratch disk made for this start and never used goes again.
            if let scratch, scratch.made { _ = try? ScratchDisk.remove(for: name, registry: registry, environment: environment) }
            // Refused by the host (no room, no jail uid, a disk): logged like a refused policy.
            guard let log = governed.log else { throw error }
            throw RefusedRun.record(error, vm: name, in: log)
        }

        // Ready means momin-init answers a ping.
        do {
            let doors = try hosted.connect(seconds: machine.timeout > 0 ? machine.timeout : 300)
            try doors.ping()
        } catch {
            ConsoleLog.showTail(of: registry.logPath(name), warn: environment.warn)
            let status = hosted.halt()
            try? governed.log?.append(batch: [.lifecycle(.vmStop(vm: name, reason: "did not come up: momin-vmm \(status)"))])
            throw .vmFailed("VM \(name) did not come up: \(error) (momin-vmm \(status))")
        }
        // The VMM holds the disks (and their locks) now; our descriptors go.
        for disk in attached { disk.close() }
        let attachEvents = attached.map { AuditEvent.lifecycle(.diskAttach($0.state(vm: name, digest: $0.attachDigest))) }
        do { try governed.log?.append(batch: [.lifecycle(.vmStart(vm: name))] + attachEvents) } catch {
            hosted.halt()
            throw .vmFailed("VM \(name): audit log: \(error); the VM was stopped")
        }
        do { try AgentHost.start(name, registry: registry, environment: environment) } catch {
            let status = hosted.halt()
            try? governed.log?.append(batch: [.lifecycle(.vmStop(vm: name, reason: "its agent host did not start: momin-vmm \(status)"))])
            throw error
        }
    }
}
