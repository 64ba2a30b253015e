import ArgumentParser
import Audit
import Doors
import Gateway
import Glibc
import Hands
import Ledger
import POSIX
import VMM

/// Long-lived VMs cannot go through the rig: each rig run is its own L2, gone when it ends.
func requireDirectKVM(_ config: MachineConfiguration, noRig: Bool) throws {
    if let reason = KVMHost.needsRig(kvmPath: config.kvmPath) {
        throw CLIError.usage("\(reason); a long-lived VM needs a KVM that boots stock kernels, so start it inside one rig run, e.g. Scripts/rig -- sh -c 'momin start NAME; momin exec NAME -- CMD'")
    }
}

/// Frees what a VM held once its momin-vmm is gone (stopped, or died: the stale case): its
/// cgroup and jail uid, its grant (the ledger would reap it too), and its registry directory.
func freeVM(_ registry: VMRegistry, _ name: String) {
    VMJail.releaseRecorded(in: registry.directory(name))
    HostResources.release(id: name)
    registry.remove(name)
}

/// Connects to a running VM's momin-init.
func connect(_ registry: VMRegistry, _ name: String, seconds: Double = 30) throws -> DoorsClient {
    try VMRegistry.validate(name)
    switch registry.state(name) {
    case .absent: throw CLIError.usage("no VM named \(name) (momin ps lists them)")
    case .stale(let why):
        freeVM(registry, name)
        throw CLIError(message: "VM \(name) is not running (\(why)); its stale state was cleaned", code: 1)
    case .running:
        do { return try DoorsClient(socketPath: registry.socketPath(name), port: Run.doorsPort, seconds: seconds) } catch {
            throw CLIError(message: "VM \(name): \(error)", code: Run.vmFailed)
        }
    }
}

/// Connects to a running VM through the tool gateway, with the governance it was started with.
/// A sub-agent's calls go through the run or agent host that started it, under its own policy
/// and its parent's log, and nowhere else.
func governedGateway(_ registry: VMRegistry, _ name: String) throws -> ToolGateway {
    if let parent = registry.parent(of: name) {
        throw CLIError.usage("VM \(name) is a sub-agent of \(parent): its tools are reached only through its parent (hands, docs/hands.md)")
    }
    let doors = try connect(registry, name)
    let governance = try VMGovernance.load(from: registry.directory(name), name: name)
        ?? VMGovernance(agent: name)
    return governance.gateway(client: doors)
}

/// How a gateway error ends a `momin exec` or `momin cp`: 77 for a denial (the call never
/// reached the guest), 125 for a failed VM or log.
func gatewayFailure(_ error: GatewayError, vm name: String, what: String) -> CLIError {
    switch error {
    case .denied: CLIError(message: "\(what): \(error)", code: Run.denied)
    case .hands(.remote(let reply)) where reply.code == .notFound: CLIError(message: "\(what): not found in VM \(name)", code: 127)
    case .hands(.remote(let reply)) where reply.code == .permissionDenied:
        CLIError(message: "\(what): permission denied in VM \(name)", code: 126)
    default: CLIError(message: "VM \(name): \(error)", code: Run.vmFailed)
    }
}

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
        let loaded = try governance.loadPolicy(for: machine)
        let registry = try VMRegistry.open()
        if case .running(let pid) = registry.state(name) { throw CLIError.usage("VM \(name) is already running (momin-vmm pid \(pid))") }
        // momin.hands: momin-init relays hands calls to the VM's agent host (momin agent-host).
        var config = try machine.configuration(extraCommandLine: "momin.doors=\(Run.doorsPort) momin.hands=\(HandsCallProtocol.port)")
        config.vsock = VsockConfiguration(guestCID: 3, socketPath: registry.socketPath(name))  // what preflight checks
        _ = try machine.preflight(config)
        try requireDirectKVM(config, noRig: machine.noRig)

        let governed = VMGovernance(agent: loaded?.policy.agent ?? name, policy: loaded,
                                    auditPath: governance.audit.map(Rig.absolute), auditKey: governance.auditKey.map(Rig.absolute))
        let settings = HostSettings(kernel: Rig.absolute(config.kernelPath), initrd: config.initrdPath.map(Rig.absolute),
                                    commandLine: config.commandLine, kvm: config.kvmPath, jail: !machine.noJail,
                                    buckets: buckets.map(Rig.absolute))
        let hosted = try HostedVM.launch(
            name: name, parent: nil, registry: registry, config: config, budget: HostResources.budget(loaded?.policy, config),
            jailing: machine.jail, timeout: machine.timeout, console: false, detached: true
        ) { dir in
            // In place before the VM exists: no call can come through ungoverned. The policy
            // load is logged now, so a log that cannot be written fails the start before boot.
            try VMGovernance.save(governed, in: dir)
            try HostSettings.save(settings, in: dir)
            do { try governed.log?.append(batch: loaded.map { [.lifecycle($0.loadEvent)] } ?? []) } catch {
                throw CLIError.usage("audit log: \(error)")
            }
        }

        // Ready means momin-init answers a ping.
        do {
            let doors = try hosted.connect(seconds: machine.timeout > 0 ? machine.timeout : 300)
            try doors.ping()
        } catch {
            Run.showTail(of: registry.logPath(name))
            let status = hosted.halt()
            try? governed.log?.append(batch: [.lifecycle(.vmStop(vm: name, reason: "did not come up: momin-vmm \(status)"))])
            throw CLIError(message: "VM \(name) did not come up: \(error) (momin-vmm \(status))", code: Run.vmFailed)
        }
        do { try governed.log?.append(batch: [.lifecycle(.vmStart(vm: name))]) } catch {
            hosted.halt()
            throw CLIError(message: "VM \(name): audit log: \(error); the VM was stopped", code: Run.vmFailed)
        }
        do { try AgentHostCommand.start(name, registry: registry) } catch {
            let status = hosted.halt()
            try? governed.log?.append(batch: [.lifecycle(.vmStop(vm: name, reason: "its agent host did not start: momin-vmm \(status)"))])
            throw error
        }
        print(name)
    }
}

/// `momin exec NAME -- CMD`: runs a command in a running VM.
struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a command in a running microVM and exit with its status.")

    @Argument(help: "The VM's name.") var name: String
    @Option(help: "Kill the command after this many seconds (0: no limit).") var timeout: Double = 0
    @Flag(name: .shortAndLong, help: "Send our standard input to the command's (otherwise it reads /dev/null).")
    var interactive = false
    @Argument(parsing: .captureForPassthrough, help: "The command, after --.") var command: [String] = []

    func run() throws {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        guard !argv.isEmpty, !argv[0].isEmpty else { throw CLIError.usage("no command given: momin exec NAME -- CMD [ARGS...]") }
        let gateway = try governedGateway(try VMRegistry.open(), name)
        let request = ExecRequest(argv: argv, env: Run.defaultEnvironment, cwd: "/",
                                  timeoutMilliseconds: timeout > 0 ? UInt32(min(timeout * 1000, Double(UInt32.max))) : nil)
        let report: ExitReport
        do {
            report = try gateway.exec(request, input: interactive ? .descriptor(0) : .none) { isStdout, bytes in
                FileDescriptorOutput(fd: isStdout ? 1 : 2).write(bytes)
            }
        } catch {
            throw gatewayFailure(error, vm: name, what: argv[0])
        }
        switch report.status {
        case .exited(let code): Glibc.exit(Int32(code))
        case .signaled(let signal): Glibc.exit(128 + Int32(signal))
        }
    }
}

/// `momin cp`: copies a file between the host and a running VM (NAME:PATH names the guest side).
struct Copy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cp", abstract: "Copy a file into or out of a running microVM: momin cp SRC NAME:/PATH, or momin cp NAME:/PATH DST.")

    @Argument(help: "Source: a host path, or NAME:/guest/path.") var source: String
    @Argument(help: "Destination: a host path, or NAME:/guest/path.") var destination: String

    static func split(_ spec: String) -> (name: String, path: String)? {
        guard let colon = spec.firstIndex(of: ":"), spec.first != "/", spec.first != "." else { return nil }
        return (String(spec[..<colon]), String(spec[spec.index(after: colon)...]))
    }

    func run() throws {
        let registry = try VMRegistry.open()
        switch (Self.split(source), Self.split(destination)) {
        case (nil, let guest?):
            let fd = open(source, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw CLIError.usage("cannot read \(source): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let gateway = try governedGateway(registry, guest.name)
            do { _ = try gateway.writeFile(WriteFileRequest(path: guest.path), from: fd) } catch {
                throw copyFailure(error, vm: guest.name, what: destination)
            }
        case (let guest?, nil):
            let gateway = try governedGateway(registry, guest.name)
            let fd = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw CLIError.usage("cannot write \(destination): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var failed: Int32?
            do {
                _ = try gateway.readFile(ReadFileRequest(path: guest.path)) { bytes in
                    guard failed == nil else { return }
                    do throws(SystemError) { try FileIO.writeAll(fd, bytes) } catch { failed = error.errno }
                }
            } catch {
                throw copyFailure(error, vm: guest.name, what: source)
            }
            if let failed { throw CLIError(message: "cannot write \(destination): \(String(cString: strerror(failed)))", code: 1) }
        default:
            throw CLIError.usage("exactly one of SRC and DST must name a VM, as NAME:/path")
        }
    }

    /// A denial exits 77, a failed VM or log 125, and a guest-side failure (no such file) 1.
    func copyFailure(_ error: GatewayError, vm name: String, what: String) -> CLIError {
        switch error {
        case .hands(.remote): CLIError(message: "\(what): \(error)", code: 1)
        default: gatewayFailure(error, vm: name, what: what)
        }
    }
}

/// `momin ps`: the named VMs; stale state left by a crashed momin-vmm is reported and cleaned.
struct PS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps", abstract: "List the named microVMs; with --tree, every VM's grant of host resources.")

    @Flag(help: "Show the resource ledger: the host's pool, and each VM (started or run) under its parent with its grant and use.")
    var tree = false

    func run() throws {
        if tree { return try printTree() }
        let registry = try VMRegistry.open()
        print("NAME                 PID      VCPUS  MEMORY  STATE")
        for name in registry.names() {
            let info = registry.info(name).split(separator: " ")
            let vcpus = info.first.map(String.init) ?? "?"
            let memory = info.dropFirst().first.map { "\($0)M" } ?? "?"
            switch registry.state(name) {
            case .running(let pid):
                print(pad(name, 20), pad(String(pid), 8), pad(vcpus, 6), pad(memory, 7), "running")
            case .stale(let why):
                freeVM(registry, name)
                print(pad(name, 20), pad("-", 8), pad(vcpus, 6), pad(memory, 7), "stale (\(why)); cleaned")
            case .absent:
                continue
            }
        }
    }

    func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }

    /// The ledger after reaping dead VMMs, with each live VMM's CPU use over 200 ms and its RSS.
    func printTree() throws {
        let store = try HostResources.store()
        let read: (ledger: ResourceLedger, reaped: [String])?
        do { read = try store.read() } catch { throw CLIError(message: "resource ledger: \(error)", code: 1) }
        guard let (ledger, reaped) = read else {
            let pool = try HostResources.pool()
            print(LedgerTree.render(ResourceLedger(pool: pool)), terminator: "")
            return
        }
        let pids = ledger.allGrants.map(\.pid)
        let before = pids.map(ProcessFigures.cpuTicks)
        usleep(200_000)
        var usage: [String: VMUsage] = [:]
        for (index, grant) in ledger.allGrants.enumerated() {
            guard let start = before[index], let end = ProcessFigures.cpuTicks(grant.pid),
                  let rss = ProcessFigures.residentKiB(grant.pid) else { continue }
            let ticksPerSecond = Int(sysconf(Int32(_SC_CLK_TCK)))
            usage[grant.id] = VMUsage(cpuPercent: (end - start) * 100 * 5 / max(ticksPerSecond, 1), residentMiB: rss / 1024)
        }
        print(LedgerTree.render(ledger, usage: usage), terminator: "")
        for id in reaped { writeStandardError("momin: freed the grant of VM \(id), whose momin-vmm is gone\n") }
    }
}

/// A process's figures from /proc.
enum ProcessFigures {
    /// utime + stime, in clock ticks (proc(5), /proc/PID/stat fields 14 and 15).
    static func cpuTicks(_ pid: Int32) -> Int? {
        guard let fields = ProcessStat.fields(of: pid), fields.count > 13, let user = Int(fields[11]),
              let system = Int(fields[12]) else { return nil }
        return user + system
    }

    /// VmRSS from /proc/PID/status, in KiB.
    static func residentKiB(_ pid: Int32) -> Int? {
        guard let status = readSmallFile("/proc/\(pid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.dropFirst(6).split(separator: " ").first ?? "")
        }
        return nil
    }
}

/// `momin stop NAME`: stops a VM and every sub-agent under it, deepest first (SIGTERM to each
/// momin-vmm, SIGKILL after 10 s), and removes their state.
struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop a named microVM and the sub-agents it started.")

    @Argument(help: "The VM's name.") var name: String

    func run() throws {
        try VMRegistry.validate(name)
        let registry = try VMRegistry.open()
        if case .absent = registry.state(name) { throw CLIError.usage("no VM named \(name)") }
        for descendant in registry.descendants(of: name) { stopOne(registry, descendant) }
        stopOne(registry, name)
    }

    func stopOne(_ registry: VMRegistry, _ name: String) {
        switch registry.state(name) {
        case .absent: return
        case .stale(let why):
            freeVM(registry, name)
            writeStandardError("momin: VM \(name) was not running (\(why)); its stale state was cleaned\n")
        case .running(let pid):
            let governance = try? VMGovernance.load(from: registry.directory(name), name: name)
            defer {
                // The stop is logged after the VM is gone, as `momin run` logs it.
                if let log = governance?.log {
                    do { try log.append(batch: [.lifecycle(.vmStop(vm: name, reason: "momin stop"))]) } catch {
                        writeStandardError("momin: VM \(name) stopped, but its audit log did not take the stop: \(error)\n")
                    }
                }
            }
            terminate(pid)
            // A long-lived VM's agent host stops what is left of its sub-agents and closes its
            // bucket store before the VM's state goes.
            AgentHostCommand.awaitExit(in: registry.directory(name))
            freeVM(registry, name)
        }
    }
}

/// Stops a process that is not our child (a VM's jailer, an agent host): SIGTERM, SIGKILL
/// after 10 s, and waits until it is gone or a zombie its own parent has yet to reap.
func terminate(_ pid: pid_t) {
    kill(pid, SIGTERM)
    var waited = 0
    while kill(pid, 0) == 0, let state = ProcessStat.fields(of: pid)?.first, state != "Z" {
        if waited == 100 { kill(pid, SIGKILL) }
        usleep(100_000)
        waited += 1
    }
}
