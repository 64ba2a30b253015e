import Agents
import ArgumentParser
import Audit
import Buckets
import Crypto
import Doors
import Gateway
import Glibc
import Hands
import Merkle
import Policy
import POSIX
import VMM

/// `momin run -- CMD [ARGS...]`: a fresh microVM runs one command through Hands exec and is torn
/// down. The command's stdout and stderr are ours byte for byte; its exit status is ours.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one command in a fresh microVM and exit with its status.",
        discussion: """
            Only the command's output reaches stdout and stderr; the guest console is kept and \
            shown on stderr only if the VM fails (or always with --console). Exit status: the \
            command's own, 128+N when signal N ended it, 2 on bad input, 125 when the VM or the \
            Doors connection failed, 126/127 when the command could not be run or found, 77 when \
            the policy denied it (it never reached the guest), 75 when the host has no room for \
            the VM (momin ps --tree).
            With --policy, the command goes through the tool gateway: the policy judges it \
            (paths as the guest resolves them) before it runs. With --audit, the request, the \
            decision and a digest of the result are appended to a signed audit log, with the \
            VM's start and stop and the policy's load.
            Inside the VM, `hands` reaches buckets (--buckets), doors and sub-agents, each \
            sub-agent a microVM of its own (docs/hands.md). SIGINT, SIGTERM or SIGHUP stop the \
            VM and every sub-agent under it.
            """)

    /// Where momin-init serves Doors (kernel parameter momin.doors).
    static let doorsPort: UInt32 = 1024
    static let vmFailed: Int32 = 125
    static let defaultEnvironment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"]

    @OptionGroup var machine: MachineOptions

    @Flag(help: "Copy the guest's serial console to stderr.")
    var console = false

    @Flag(name: .shortAndLong, help: "Send our standard input to the command's (otherwise it reads /dev/null).")
    var interactive = false

    @OptionGroup var governance: GovernanceOptions

    @Option(help: "Keep the session (machine, entropy seed, every call and its result digest) in FILE for momin replay.")
    var record: String?

    @Option(help: "The VM's name, which its sub-agents' names start with and momin ps and momin stop know it by (default: the policy's agent, or run, then -PID).")
    var name: String?

    @Option(help: "A bucket store (SQLite, docs/buckets.md) for the hands bucket calls made inside the VM and its sub-agents.")
    var buckets: String?

    /// Exit status of a call the policy denied (sysexits' EX_NOPERM).
    static let denied: Int32 = 77

    @Argument(parsing: .captureForPassthrough, help: "The command to run in the guest, after --.")
    var command: [String] = []

    func run() throws {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        guard !argv.isEmpty, !argv[0].isEmpty else { throw CLIError.usage("no command given: momin run [OPTIONS] -- CMD [ARGS...]") }
        let timeout = machine.timeout > 0 ? machine.timeout : nil

        // Governance first: a bad policy or audit log is bad input, refused before any VM.
        let loaded = try governance.loadPolicy(for: machine)
        let agentPolicy = loaded?.policy
        let audit = governance.audit
        // momin.hands: momin-init relays hands calls from inside the VM to this process.
        var config = try machine.configuration(extraCommandLine: "momin.doors=\(Self.doorsPort) momin.hands=\(HandsCallProtocol.port)")
        if record != nil, config.entropySeed == nil {
            // A recorded session needs a seed to be replayed with: make one.
            var seed = [UInt8](repeating: 0, count: EntropySeed.byteCount)
            seed.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
            config.entropySeed = seed
        }
        _ = try machine.preflight(config)  // refuses bad input here, before any rig or child
        try Self.checkRig(config, noRig: machine.noRig, outputs: [audit, record, buckets].compactMap { $0 })
        let vmName = name ?? "\(loaded?.policy.agent ?? "run")-\(getpid())"
        try VMRegistry.validate(vmName)
        // Opened only now, so that a command refused above leaves no log behind.
        let log: AuditLog?
        do {
            log = try audit.map { path throws(AuditError) in
                try AuditLog(path: path, options: AuditLog.Options(keyPath: governance.auditKey))
            }
        } catch {
            throw CLIError.usage(error.description)
        }
        // Closed (and its head signed) explicitly by `session`: the exits below skip defers.
        defer { try? log?.close() }
        let store: BucketStore?
        do { store = try buckets.map { path throws(BucketError) in try BucketStore(path: path) } } catch {
            throw CLIError.usage("bucket store \(buckets ?? ""): \(error)")
        }
        defer { try? store?.close() }

        // The command may run as long as the VM (--timeout), and no longer than the policy's
        // per-call limit: --timeout is the VM's budget, not a request for more than the policy gives.
        var commandSeconds = timeout
        if let cap = agentPolicy?.limits.callTimeout {
            let capSeconds = Double(cap.components.seconds) + Double(cap.components.attoseconds) / 1e18
            commandSeconds = min(commandSeconds ?? capSeconds, capSeconds)
        }
        let request = ExecRequest(argv: argv, env: Self.defaultEnvironment,
                                  cwd: "/", timeoutMilliseconds: commandSeconds.map { UInt32(min($0 * 1000, Double(UInt32.max))) })
        var observations: [CallObservation] = []
        let session = try Self.session(config, name: vmName, timeout: machine.timeout, console: console, jailing: machine.jail,
                                       policy: loaded, log: log, auditPath: audit, agents: AgentHosting(store: store)) { gateway throws(GatewayError) in
            if record != nil { gateway.observe = { observations.append($0) } }
            return try gateway.exec(request, input: interactive ? .descriptor(0) : .none) { isStdout, bytes in
                FileDescriptorOutput(fd: isStdout ? 1 : 2).write(bytes)
            }
        }
        let result = session.result
        if let record {
            do { try SessionFiles.write(record, config: config, policyPath: loaded?.path, policySource: loaded?.source, calls: observations) } catch {
                throw CLIError(message: "cannot write the session record \(record): \(error)", code: Self.vmFailed)
            }
        }

        switch result {
        case .success(let report):
            switch report.status {
            case .exited(let code): Glibc.exit(Int32(code))
            case .signaled(let signal): Glibc.exit(128 + Int32(signal))
            }
        case .failure(.hands(.remote(let reply))) where reply.code == .notFound:
            throw CLIError(message: "\(argv[0]): command not found in the guest", code: 127)
        case .failure(.hands(.remote(let reply))) where reply.code == .permissionDenied:
            throw CLIError(message: "\(argv[0]): permission denied in the guest", code: 126)
        case .failure(.denied(let decision)):
            throw CLIError(message: "\(argv[0]): \(GatewayError.denied(decision))", code: Self.denied)
        case .failure(let error):
            if !console { Self.showTail(of: session.consoleLog) }
            throw CLIError(message: "\(error) (momin-vmm \(session.vmStatus))", code: Self.vmFailed)
        }
    }

    /// Hands off to the nested rig (which re-executes this command there) when this host's KVM
    /// cannot boot stock kernels, or refuses with --no-rig.
    /// `outputs` names files the command writes (an audit log, a record): the rig's L2 is a
    /// throwaway machine whose files never come back, so such a command is refused there rather
    /// than have its output silently lost.
    static func checkRig(_ config: MachineConfiguration, noRig: Bool, outputs: [String] = []) throws {
        guard let reason = KVMHost.needsRig(kvmPath: config.kvmPath) else { return }
        if noRig { throw CLIError.usage("\(reason); it cannot boot stock kernels (drop --no-rig to use the nested rig)") }
        if let output = outputs.first {
            throw CLIError.usage("\(reason), and \(output) would be written inside the nested rig and lost; "
                                 + "run the whole job inside it instead (Scripts/rig -- momin ...)")
        }
        try Rig.reexec(reason: reason, files: [config.kernelPath, config.initrdPath].compactMap { $0 })
    }

    /// How a session in a fresh microVM ended.
    struct SessionEnd<T> {
        var result: Result<T, GatewayError>
        var vmStatus: String
        /// The VM's console and momin-vmm's messages (kept until the process exits).
        var consoleLog: String
    }

    /// Boots `config` as VM `name` in a momin-vmm child, connects to its Doors server and runs
    /// `body` with a gateway (policy and log as given, lifecycle entries included), then stops
    /// the VM and closes the log, signing a head over the session. The console goes to the
    /// VM's log, or to our stderr with `console`.
    ///
    /// With `agents`, the VM's hands calls are served (given momin.hands on its kernel command
    /// line): buckets, doors and sub-agents, each sub-agent its own VM under this one; every
    /// sub-agent is stopped before the VM is.
    static func session<T>(_ config: MachineConfiguration, name: String, timeout: Double, console: Bool,
                           jailing: @escaping (String, MachineConfiguration, String) throws -> VMJail?,
                           policy loaded: LoadedPolicy?, log: AuditLog?, auditPath: String?, agents: AgentHosting? = nil,
                           _ body: (ToolGateway) throws(GatewayError) -> T) throws -> SessionEnd<T> {
        let registry = try VMRegistry.open()
        // SIGINT, SIGTERM and SIGHUP stop the VM, and so the run, which then stops every
        // sub-agent and frees what the tree held: blocked here before any thread starts (each
        // inherits the mask; the VMMs get theirs cleared), and taken by one thread below.
        let stops = SignalRelay.blockStopSignals()
        let hosted = try HostedVM.launch(name: name, parent: nil, registry: registry, config: config,
                                         budget: HostResources.budget(loaded?.policy, config), jailing: jailing,
                                         timeout: timeout, console: console)
        let vmPID = hosted.vm.pid
        try? POSIXThread.detach(name: "signals") {
            var set = stops
            var signal: Int32 = 0
            guard sigwait(&set, &signal) == 0 else { return }
            writeStandardError("momin: signal \(signal): stopping VM \(name) and every sub-agent under it\n")
            kill(vmPID, SIGTERM)
        }
        // The directory goes when the process exits (it exits with the command's status, which
        // skips defers); until then its console log can still be shown.
        let logPath = registry.logPath(name)
        RuntimeDirectory(path: registry.directory(name)).removeAtExit()
        let waitSeconds = timeout > 0 ? timeout : 300
        var gateway: ToolGateway?
        var tree: AgentTree?
        let result: Result<T, GatewayError>
        do throws(GatewayError) {
            let doors: DoorsClient
            do { doors = try hosted.connect(seconds: waitSeconds) } catch { throw .hands(error) }
            let requestIDs = RequestNumbers()
            let through = ToolGateway(agent: name, client: doors, policy: loaded?.policy, log: log, requestIDs: requestIDs)
            gateway = through
            if let loaded { try through.record(loaded.loadEvent) }
            try through.record(.vmStart(vm: name))
            if let agents {
                let launcher = SubAgentVMs(registry: registry, base: config, jailing: jailing, log: log, requestIDs: requestIDs)
                let agentTree = AgentTree(store: agents.store, launcher: launcher, requestIDs: requestIDs)
                do {
                    try agentTree.addRoot(Agent(name: name, parent: nil, session: through.session),
                                          handsSocket: hosted.hostPortSocket(HandsCallProtocol.port))
                } catch { throw .limitState("cannot serve the VM's hands calls: \(error)") }
                tree = agentTree
            }
            result = .success(try body(through))
        } catch {
            result = .failure(error)
        }
        tree?.shutDown(root: name, reason: "the run ended")
        let vmStatus = hosted.halt(keepDirectory: true)
        do {
            try gateway?.record(.vmStop(vm: name, reason: "momin-vmm \(vmStatus)"))
            try log?.close()  // signs a head over everything this session appended
        } catch {
            // The calls have run, but their record is incomplete: that is a failure to report.
            throw CLIError(message: "audit log \(auditPath ?? ""): \(error)", code: vmFailed)
        }
        do { try agents?.store?.close() } catch {  // signs each namespace's head
            throw CLIError(message: "bucket store: \(error)", code: vmFailed)
        }
        return SessionEnd(result: result, vmStatus: vmStatus, consoleLog: logPath)
    }

    /// The last lines of the VM's log, to explain a failure.
    static func showTail(of path: String, lines: Int = 20) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let size = lseek(fd, 0, SEEK_END)
        let start = max(0, size - 16384)
        var buffer = [UInt8](repeating: 0, count: Int(size - start))
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, start) }
        guard n > 0 else { return }
        let tail = buffer[..<n].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).suffix(lines)
        writeStandardError("momin: the VM's console and log ended with:\n")
        for line in tail { FileDescriptorOutput(fd: 2).write(Array(line) + [UInt8(ascii: "\n")]) }
    }
}

/// What a session serves its VM's hands calls with.
struct AgentHosting {
    var store: BucketStore?
}

/// The momin-vmm child of `momin run`.
final class ChildVMM: @unchecked Sendable {
    let pid: pid_t
    private var status: Int32?

    init(pid: pid_t) { self.pid = pid }

    /// False once the child has exited (reaped here).
    var isRunning: Bool {
        if status != nil { return false }
        var s: Int32 = 0
        if waitpid(pid, &s, WNOHANG) == pid { status = s; return false }
        return true
    }

    /// Asks the VMM to stop the guest (SIGTERM) and waits for it; describes how it ended.
    /// A VMM (or its jailer) that has not stopped 10 s after SIGTERM is killed.
    func stop() -> String {
        if status == nil {
            kill(pid, SIGTERM)
            var s: Int32 = 0
            var waited = 0
            while true {
                let reaped = waitpid(pid, &s, WNOHANG)
                if reaped == pid || (reaped < 0 && errno != EINTR) { break }
                if waited == 100 { kill(pid, SIGKILL) }
                usleep(100_000)
                waited += 1
            }
            status = s
        }
        let s = status ?? 0
        if s & 0x7f == 0 { return "exited \((s >> 8) & 0xff)" }
        return "killed by signal \(s & 0x7f)"
    }
}

/// A private directory for one VM's sockets and log: $XDG_RUNTIME_DIR/momin, /run/momin for
/// root, or /tmp/momin-UID; mode 0700; removed when the run ends.
struct RuntimeDirectory {
    let path: String

    /// The directory the runs' directories and the resource ledger share, made if needed.
    static func base() throws -> String {
        let base: String
        if let runtime = getenv("XDG_RUNTIME_DIR"), runtime.pointee != 0 { base = String(cString: runtime) + "/momin" }
        else if getuid() == 0, access("/run", W_OK) == 0 { base = "/run/momin" }
        else { base = "/tmp/momin-\(getuid())" }
        if mkdir(base, 0o700) != 0 && errno != EEXIST {
            throw CLIError(message: "cannot create \(base): \(String(cString: strerror(errno)))", code: 125)
        }
        return base
    }

    static func create() throws -> RuntimeDirectory {
        let base = try base()
        var template = Array("\(base)/vm.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw CLIError(message: "cannot create a directory in \(base): \(String(cString: strerror(errno)))", code: 125)
        }
        return RuntimeDirectory(path: String(cString: made))
    }

    nonisolated(unsafe) private static var atExit: [String] = []

    /// Removes the directory when the process exits, however it exits short of a signal.
    func removeAtExit() {
        if Self.atExit.isEmpty {
            atexit { for path in RuntimeDirectory.atExit { RuntimeDirectory(path: path).remove() } }
        }
        Self.atExit.append(path)
    }

    /// Removes the directory and what is in it (sockets, the log, the socket directory).
    func remove() {
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
                guard name != "." && name != ".." else { continue }
                if entry.pointee.d_type == UInt8(DT_DIR) { RuntimeDirectory(path: path + "/" + name).remove() } else { unlink(path + "/" + name) }
            }
            closedir(dir)
        }
        rmdir(path)
    }
}
