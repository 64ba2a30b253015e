import Agents
import ArgumentParser
import Buckets
import Doors
import Gateway
import Glibc
import Ledger
import Policy
import VMM

/// What a long-lived VM's agent host needs to start sub-agents as `momin start` would have
/// started them, kept in the VM's registry directory (`host`: one `key value` line each).
struct HostSettings {
    var kernel: String
    var initrd: String?
    var commandLine: String
    var kvm: String
    var jail: Bool
    var buckets: String?

    static func save(_ settings: HostSettings, in directory: String) throws {
        var lines = ["kernel \(settings.kernel)", "cmdline \(settings.commandLine)", "kvm \(settings.kvm)",
                     "jail \(settings.jail ? "yes" : "no")"]
        if let initrd = settings.initrd { lines.append("initrd \(initrd)") }
        if let buckets = settings.buckets { lines.append("buckets \(buckets)") }
        try writeSmallFile(directory + "/host", lines.joined(separator: "\n") + "\n")
    }

    static func load(from directory: String, name: String) throws -> HostSettings {
        guard let text = readSmallFile(directory + "/host") else {
            throw CLIError(message: "VM \(name): \(directory)/host is missing", code: 1)
        }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else { throw CLIError(message: "VM \(name): \(directory)/host is damaged", code: 1) }
            fields[String(line[..<space])] = String(line[line.index(after: space)...])
        }
        guard let kernel = fields["kernel"], let commandLine = fields["cmdline"], let kvm = fields["kvm"], let jail = fields["jail"] else {
            throw CLIError(message: "VM \(name): \(directory)/host lacks a field", code: 1)
        }
        return HostSettings(kernel: kernel, initrd: fields["initrd"], commandLine: commandLine, kvm: kvm, jail: jail == "yes",
                            buckets: fields["buckets"])
    }

    /// The machine a sub-agent starts from: the VM's kernel, image and command line.
    var configuration: MachineConfiguration {
        MachineConfiguration(kernelPath: kernel, initrdPath: initrd, commandLine: commandLine, vcpus: 1, memoryMiB: 256, kvmPath: kvm)
    }
}

/// `momin agent-host NAME` (started by `momin start`, detached): serves the hands calls of the
/// long-lived VM NAME and of the sub-agents it starts, as `momin run` serves its VM's, until
/// the VM's momin-vmm is gone or SIGTERM; then stops the sub-agents and exits. Its calls count
/// against the VM's persisted limits and go to its shared audit log.
struct AgentHostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent-host", abstract: "Serve a long-lived VM's hands calls (started by momin start).", shouldDisplay: false)

    @Argument(help: "The VM's name.") var name: String

    func run() throws {
        try VMRegistry.validate(name)
        let registry = try VMRegistry.open()
        guard case .running = registry.state(name) else { throw CLIError.usage("VM \(name) is not running") }
        let dir = registry.directory(name)
        let governance = try VMGovernance.load(from: dir, name: name) ?? VMGovernance(agent: name)
        let settings = try HostSettings.load(from: dir, name: name)
        let store: BucketStore?
        do { store = try settings.buckets.map { path throws(BucketError) in try BucketStore(path: path) } } catch {
            throw CLIError(message: "VM \(name): bucket store \(settings.buckets ?? ""): \(error)", code: 1)
        }
        let requestIDs = RequestNumbers()
        let log = governance.log
        let session = GovernedSession(agent: name, policy: governance.policy?.policy, log: log, resolver: NoGuestPaths(),
                                      limits: governance.limits, requestIDs: requestIDs)
        let noJail = !settings.jail
        let launcher = SubAgentVMs(registry: registry, base: settings.configuration,
                                   jailing: { try VMJail.make(noJail: noJail, vm: $0, $1, socketDirectory: $2) },
                                   log: log, requestIDs: requestIDs)
        let tree = AgentTree(store: store, launcher: launcher, requestIDs: requestIDs)
        let stops = SignalRelay.blockStopSignals()
        do {
            try tree.addRoot(Agent(name: name, parent: nil, session: session),
                             handsSocket: registry.socketPath(name) + "_\(HandsCallProtocol.port)")
        } catch {
            throw CLIError(message: "VM \(name): cannot serve hands calls: \(error)", code: 1)
        }
        try writeSmallFile(dir + "/agent-host", "\(getpid())\n")
        // Until the VM is gone, or SIGTERM, SIGINT or SIGHUP.
        var wait = stops
        var pause = timespec(tv_sec: 0, tv_nsec: 500_000_000)
        while case .running = registry.state(name) {
            if sigtimedwait(&wait, nil, &pause) > 0 { break }
        }
        tree.shutDown(root: name, reason: "VM \(name) stopped")
        do { try store?.close() } catch { writeStandardError("momin agent-host: bucket store: \(error)\n") }
        unlink(dir + "/agent-host")
    }

    /// Starts `momin agent-host NAME` in a session of its own, its output in the VM's
    /// directory, and waits until it serves (its socket is there) or has failed.
    static func start(_ name: String, registry: VMRegistry) throws {
        let dir = registry.directory(name)
        let logPath = dir + "/agent-host.log"
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard logFD >= 0 else { throw CLIError(message: "cannot open \(logPath): \(String(cString: strerror(errno)))", code: Run.vmFailed) }
        defer { close(logFD) }
        guard let me = Rig.selfPath() else { throw CLIError(message: "cannot find this momin binary (/proc/self/exe)", code: Run.vmFailed) }
        let pid = try spawnProcess([me, "agent-host", name], output: logFD, setsid: true)
        let socket = registry.socketPath(name) + "_\(HandsCallProtocol.port)"
        for _ in 0..<100 {
            if access(dir + "/agent-host", F_OK) == 0, access(socket, F_OK) == 0 { return }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                throw CLIError(message: "VM \(name): its agent host exited: \(readSmallFile(logPath)?.trimmingNewline() ?? "")", code: Run.vmFailed)
            }
            usleep(50_000)
        }
        kill(pid, SIGKILL)
        throw CLIError(message: "VM \(name): its agent host did not come up in 5 s", code: Run.vmFailed)
    }

    /// Ends the VM's agent host once the VM is stopped: SIGTERM makes it stop its sub-agents
    /// and exit (SIGKILL after 10 s).
    static func awaitExit(in directory: String) {
        guard let text = readSmallFile(directory + "/agent-host"), let pid = pid_t(text.trimmingNewline()) else { return }
        guard let cmdline = readSmallFile("/proc/\(pid)/cmdline"), cmdline.contains("agent-host") else { return }
        terminate(pid)
    }
}
