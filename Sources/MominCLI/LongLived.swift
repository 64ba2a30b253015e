import ArgumentParser
import Doors
import Glibc
import Hands
import VMM

/// Long-lived VMs cannot go through the rig: each rig run is its own L2, gone when it ends.
func requireDirectKVM(_ config: MachineConfiguration, noRig: Bool) throws {
    if let reason = KVMHost.needsRig(kvmPath: config.kvmPath) {
        throw CLIError.usage("\(reason); a long-lived VM needs a KVM that boots stock kernels, so start it inside one rig run, e.g. Scripts/rig -- sh -c 'momin start NAME; momin exec NAME -- CMD'")
    }
}

/// Connects to a running VM's momin-init.
func connect(_ registry: VMRegistry, _ name: String, seconds: Double = 30) throws -> DoorsClient {
    try VMRegistry.validate(name)
    switch registry.state(name) {
    case .absent: throw CLIError.usage("no VM named \(name) (momin ps lists them)")
    case .stale(let why):
        registry.remove(name)
        throw CLIError(message: "VM \(name) is not running (\(why)); its stale state was cleaned", code: 1)
    case .running:
        do { return try DoorsClient(socketPath: registry.socketPath(name), port: Run.doorsPort, seconds: seconds) } catch {
            throw CLIError(message: "VM \(name): \(error)", code: Run.vmFailed)
        }
    }
}

/// `momin start NAME`: boots a microVM that stays up, serving Doors, until `momin stop NAME`.
struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start a named microVM that stays up until `momin stop`.")

    @Argument(help: "The VM's name.") var name: String
    @OptionGroup var machine: MachineOptions

    func run() throws {
        try VMRegistry.validate(name)
        let registry = try VMRegistry.open()
        switch registry.state(name) {
        case .running(let pid): throw CLIError.usage("VM \(name) is already running (momin-vmm pid \(pid))")
        case .stale(let why):
            registry.remove(name)
            writeStandardError("momin: cleaned the stale state of VM \(name) (\(why))\n")
        case .absent: break
        }
        var config = try machine.configuration(extraCommandLine: "momin.doors=\(Run.doorsPort)")
        config.vsock = VsockConfiguration(guestCID: 3, socketPath: registry.socketPath(name))
        _ = try machine.preflight(config)
        try requireDirectKVM(config, noRig: machine.noRig)

        let dir = registry.directory(name)
        guard mkdir(dir, 0o700) == 0 else { throw CLIError(message: "cannot create \(dir): \(String(cString: strerror(errno)))", code: 1) }
        let logFD = open(registry.logPath(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard logFD >= 0 else { throw CLIError(message: "cannot open \(registry.logPath(name))", code: 1) }
        let pid: pid_t
        do {
            pid = try VMMLauncher.spawn(config, timeout: machine.timeout, logFD: logFD, newSession: true)
        } catch {
            close(logFD)
            registry.remove(name)
            throw error
        }
        close(logFD)
        try writeSmallFile(dir + "/pid", "\(pid)\n")
        try writeSmallFile(dir + "/info", "\(config.vcpus) \(config.memoryMiB)\n")

        // Ready means momin-init answers a ping.
        let vm = ChildVMM(pid: pid)
        do {
            let doors = try DoorsClient(socketPath: registry.socketPath(name), port: Run.doorsPort,
                                        seconds: machine.timeout > 0 ? machine.timeout : 300, giveUp: { !vm.isRunning })
            try doors.ping()
        } catch {
            let status = vm.stop()
            Run.showTail(of: registry.logPath(name))
            registry.remove(name)
            throw CLIError(message: "VM \(name) did not come up: \(error) (momin-vmm \(status))", code: Run.vmFailed)
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
        let doors = try connect(try VMRegistry.open(), name)
        let request = ExecRequest(argv: argv, env: Run.defaultEnvironment, cwd: "/",
                                  timeoutMilliseconds: timeout > 0 ? UInt32(min(timeout * 1000, Double(UInt32.max))) : nil)
        let report: ExitReport
        do {
            report = try doors.exec(request, input: interactive ? .descriptor(0) : .none) { isStdout, bytes in
                FileDescriptorOutput(fd: isStdout ? 1 : 2).write(bytes)
            }
        } catch .remote(let reply) where reply.code == .notFound {
            throw CLIError(message: "\(argv[0]): command not found in VM \(name)", code: 127)
        } catch {
            throw CLIError(message: "VM \(name): \(error)", code: Run.vmFailed)
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
            let doors = try connect(registry, guest.name)
            do { _ = try doors.writeFile(WriteFileRequest(path: guest.path), from: fd) } catch {
                throw CLIError(message: "\(destination): \(error)", code: 1)
            }
        case (let guest?, nil):
            let doors = try connect(registry, guest.name)
            let fd = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw CLIError.usage("cannot write \(destination): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            do { _ = try doors.readFile(ReadFileRequest(path: guest.path), to: fd) } catch {
                throw CLIError(message: "\(source): \(error)", code: 1)
            }
        default:
            throw CLIError.usage("exactly one of SRC and DST must name a VM, as NAME:/path")
        }
    }
}

/// `momin ps`: the named VMs; stale state left by a crashed momin-vmm is reported and cleaned.
struct PS: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List the named microVMs.")

    func run() throws {
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
                registry.remove(name)
                print(pad(name, 20), pad("-", 8), pad(vcpus, 6), pad(memory, 7), "stale (\(why)); cleaned")
            case .absent:
                continue
            }
        }
    }

    func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }
}

/// `momin stop NAME`: stops a VM (SIGTERM to its momin-vmm, SIGKILL after 10 s) and removes its state.
struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop a named microVM.")

    @Argument(help: "The VM's name.") var name: String

    func run() throws {
        try VMRegistry.validate(name)
        let registry = try VMRegistry.open()
        switch registry.state(name) {
        case .absent: throw CLIError.usage("no VM named \(name)")
        case .stale(let why):
            registry.remove(name)
            writeStandardError("momin: VM \(name) was not running (\(why)); its stale state was cleaned\n")
        case .running(let pid):
            kill(pid, SIGTERM)
            var waited = 0
            while kill(pid, 0) == 0 && access("/proc/\(pid)/cmdline", F_OK) == 0 && isNotZombie(pid) {
                if waited == 100 { kill(pid, SIGKILL) }
                usleep(100_000)
                waited += 1
            }
            registry.remove(name)
        }
    }

    func isNotZombie(_ pid: pid_t) -> Bool {
        guard let stat = readSmallFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return false }
        return !stat[close...].hasPrefix(") Z")
    }
}
