import ArgumentParser
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
        try machine.refuseDisks("start")
        let loaded = try governance.loadPolicy(for: machine) { _ in name }
        let host = hostEnvironment()
        let registry = try VMRegistry.open(host)
        if case .running(let pid) = registry.state(name) { throw CLIError.usage("VM \(name) is already running (momin-vmm pid \(pid))") }
        // momin.hands: momin-init relays hands calls to the VM's agent host (momin agent-host).
        let config = try machine.configuration(extraCommandLine: "momin.doors=\(guestDoorsPort) momin.hands=\(HandsCallProtocol.port)")
        try VMMLauncher(host).preflight(config)
        try requireDirectKVM(config)

        let governed = VMGovernance(agent: loaded?.policy.agent ?? name, vm: name, policy: loaded,
                                    auditPath: governance.audit.map(Paths.absolute), auditKey: governance.auditKey.map(Paths.absolute),
                                    auditWitness: governance.witness.map(Paths.absolute))
        let settings = HostSettings(config, jail: machine.jail, buckets: buckets)
        var launch = HostedVM.Launch(name: name)
        launch.budget = HostResources.budget(loaded?.policy, config)
        launch.jail = machine.jail
        launch.timeout = machine.timeout
        launch.detached = true
        let hosted: HostedVM
        do {
            hosted = try HostedVM.launch(launch, config: config, registry: registry, environment: host) { dir throws(HostError) in
                // In place before the VM exists: no call can come through ungoverned. The policy
                // load is logged now, so a log that cannot be written fails the start before boot.
                try VMGovernance.save(governed, in: dir)
                try HostSettings.save(settings, in: dir)
                do { try governed.log?.append(batch: loaded.map { [.lifecycle($0.loadEvent)] } ?? []) } catch {
                    throw .badInput("audit log: \(error)")
                }
            }
        } catch {
            // Refused by the host (no room, no jail uid): logged like a refused policy.
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
        do { try governed.log?.append(batch: [.lifecycle(.vmStart(vm: name))]) } catch {
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
