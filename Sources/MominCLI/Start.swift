import ArgumentParser
import Audit
import Doors
import Host

/// `momin start NAME`: boots a microVM that stays up, serving Doors, until `momin stop NAME`.
struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start a named microVM that stays up until `momin stop`.")

    @Argument(help: "The VM's name.") var name: String
    @OptionGroup var machine: MachineOptions
    @OptionGroup var governance: GovernanceOptions

    @Option(help: "A bucket store (SQLite, docs/buckets.md) for the hands bucket calls made inside the VM and its sub-agents.")
    var buckets: String?

    func run() throws {
        try VMRegistry.validate(name)
        let disks = try machine.diskRequests()
        let loaded = try governance.loadPolicy(for: machine) { _ in name }
        let host = hostEnvironment()
        let registry = try VMRegistry.open(host)
        if case .running(let pid) = registry.state(name) { throw CLIError.usage("VM \(name) is already running (momin-vmm pid \(pid))") }
        // momin.hands: momin-init relays hands calls to the VM's agent host (momin agent-host).
        let config = try machine.configuration(extraCommandLine: "momin.doors=\(guestDoorsPort) momin.hands=\(HandsCallProtocol.port) momin.egress")
        try VMMLauncher(host).preflight(config)
        try requireDirectKVM(config)
        let rootImage = try machine.rootImagePath()
        // Made now if asked for and new; kept from an earlier start otherwise (docs/disks.md, "Scratch").
        let scratch = try ScratchDisk.prepare(for: name, size: machine.scratch, environment: host)
        if let scratch, !scratch.made { host.warn("VM \(name): attaching its scratch disk \(scratch.request.path), kept from an earlier start") }
        var attached: [AttachedDisk] = []

        let governed = VMGovernance(agent: loaded?.policy.agent ?? name, vm: name, policy: loaded,
                                    auditPath: governance.audit.map(Paths.absolute), auditKey: governance.auditKey.map(Paths.absolute),
                                    auditWitness: governance.witness.map(Paths.absolute))
        let settings = HostSettings(config, jail: machine.jail, buckets: buckets)
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
            hosted = try HostedVM.launch(launch, config: config, registry: registry, environment: host) { dir throws(HostError) in
                // In place before the VM exists: no call can come through ungoverned. The policy
                // load is logged now, so a log that cannot be written fails the start before boot.
                try VMGovernance.save(governed, in: dir)
                try HostSettings.save(settings, in: dir)
                try VMDisks.save(attached, in: dir)  // for its agent host, and momin stop's log
                do { try governed.log?.append(batch: loaded.map { [.lifecycle($0.loadEvent)] } ?? []) } catch {
                    throw .badInput("audit log: \(error)")
                }
            }
        } catch {
            // A scratch disk made for this start and never used goes again.
            if let scratch, scratch.made { _ = try? ScratchDisk.remove(for: name, registry: registry, environment: host) }
            // Refused by the host (no room, no jail uid, a disk): logged like a refused policy.
            guard let log = governed.log else { throw error }
            throw RefusedRun.record(error, vm: name, in: log)
        }

        // Ready means momin-init answers a ping.
        do {
            let doors = try hosted.connect(seconds: machine.timeout > 0 ? machine.timeout : 300)
            try doors.ping()
        } catch {
            ConsoleLog.showTail(of: registry.logPath(name), warn: host.warn)
            let status = hosted.halt()
            try? governed.log?.append(batch: [.lifecycle(.vmStop(vm: name, reason: "did not come up: momin-vmm \(status)"))])
            throw CLIError("VM \(name) did not come up: \(error) (momin-vmm \(status))", .vmFailed)
        }
        // The VMM holds the disks (and their locks) now; our descriptors go.
        for disk in attached { disk.close() }
        let attachEvents = attached.map { AuditEvent.lifecycle(.diskAttach($0.state(vm: name, digest: $0.attachDigest))) }
        do { try governed.log?.append(batch: [.lifecycle(.vmStart(vm: name))] + attachEvents) } catch {
            hosted.halt()
            throw CLIError("VM \(name): audit log: \(error); the VM was stopped", .vmFailed)
        }
        do { try AgentHost.start(name, registry: registry, environment: host) } catch {
            let status = hosted.halt()
            try? governed.log?.append(batch: [.lifecycle(.vmStop(vm: name, reason: "its agent host did not start: momin-vmm \(status)"))])
            throw error
        }
        print(name)
    }
}
