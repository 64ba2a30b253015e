import ArgumentParser
import Audit
import Buckets
import Doors
import Egress
import Gateway
import Glibc
import Host
import MachineConfig
import POSIX

/// `momin run -- CMD [ARGS...]`: a fresh microVM runs one command through Doors exec and is torn
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

    /// The environment a command gets.
    static let defaultEnvironment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"]

    @OptionGroup var machine: MachineOptions

    @Flag(help: "Copy the guest's serial console to stderr.")
    var console = false

    @Flag(name: .shortAndLong, help: "Send our standard input to the command's (otherwise it reads /dev/null).")
    var interactive = false

    @OptionGroup var governance: GovernanceOptions

    @Option(help: "Keep the session (machine, inputs, entropy seed, every call and its result digest; model answers and plain HTTP responses in FILE.exchanges/) in FILE for momin replay.")
    var record: String?

    @Option(help: "The VM's name, which its sub-agents' names start with and momin ps and momin stop know it by (default: the policy's agent, or run, then -PID).")
    var name: String?

    @Option(help: "A bucket store (SQLite, docs/buckets.md) for the hands bucket calls made inside the VM and its sub-agents.")
    var buckets: String?

    // Only what follows `--` is the guest's: `momin run --help` is ours.
    @Argument(parsing: .postTerminator, help: "The command to run in the guest, after --.")
    var command: [String] = []

    func run() throws {
        let argv = command
        guard !argv.isEmpty, !argv[0].isEmpty else { throw CLIError.usage("no command given: momin run [OPTIONS] -- CMD [ARGS...]") }
        let timeout = machine.timeout > 0 ? machine.timeout : nil
        try machine.refuseScratch("run")
        let disks = try machine.diskRequests()
        // A replay gives the command what the run gave it; standard input is not kept.
        if record != nil && interactive {
            throw CLIError.usage("--record with --interactive: standard input is not recorded, so the session could not be replayed")
        }
        if record != nil { try SessionRecordFile.refuseWritable(disks) }

        // Governance first: a bad policy or audit log is bad input, refused before any VM.
        let loaded = try governance.loadPolicy(for: machine) { agent in name ?? "\(agent ?? "run")-\(getpid())" }
        // momin.hands: momin-init relays hands calls from inside the VM to this process.
        var config = try machine.configuration(extraCommandLine: "momin.doors=\(guestDoorsPort) momin.hands=\(HandsCallProtocol.port) momin.egress")
        if record != nil, config.entropySeed == nil {
            // A recorded session needs a seed to be replayed with: make one.
            var seed = [UInt8](repeating: 0, count: EntropySeed.byteCount)
            seed.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
            config.entropySeed = seed
        }
        let host = hostEnvironment()
        try VMMLauncher(host).preflight(config)  // refuses bad input here, before any rig or child
        try AttachedDisk.check(disks, policy: loaded?.policy)
        let rootImage = try machine.rootImagePath()
        if let rootImage { try AttachedDisk.check([.rootImage(rootImage)], policy: nil) }
        let rig = try machine.rigDisks(disks)
        try Rig.check(config, noRig: machine.noRig, outputs: [governance.audit, governance.witness, record, buckets].compactMap { $0 } + rig.written,
                      drives: rig.drives, files: rig.files)
        // The inputs by digest now, before the run; the record is written after it.
        let recording = try record.map { _ throws(HostError) in
            try SessionRecordFile.prepare(config: config, policy: loaded, rootImage: rootImage, overlay: machine.overlay, disks: disks,
                                          buckets: buckets != nil)
        }
        let tape: SessionTape?
        do {
            tape = try record.map { path throws(SystemError) in .recording(try ExchangeStore(directory: ExchangeStore.directory(forRecord: path))) }
        } catch {
            throw CLIError.usage("--record \(record ?? ""): the exchange store: \(error)")
        }
        let vmName = name ?? "\(loaded?.policy.agent ?? "run")-\(getpid())"
        try VMRegistry.validate(vmName)
        let registry = try VMRegistry.open(host)
        // Opened only now, so that a command refused above leaves no log behind.
        let log: AuditLog?
        do {
            log = try governance.audit.map { path throws(AuditError) in
                try AuditLog(path: path, options: governance.auditOptions)
            }
        } catch {
            throw CLIError.usage(error.description)
        }
        // Closed (and its head signed) explicitly by the session: the exits below skip defers.
        defer { try? log?.close() }
        let store: BucketStore?
        // A recorded session keeps the store's clock readings, for the replay's store to tell again.
        let clock = record != nil ? RecordedClock.recording() : nil
        var storeOptions = BucketStore.Options()
        if let clock { storeOptions.clock = { clock.now() } }
        do { store = try buckets.map { path throws(BucketError) in try BucketStore(path: path, options: storeOptions) } } catch {
            throw CLIError.usage("bucket store \(buckets ?? ""): \(error)")
        }
        defer { try? store?.close() }

        // The command may run as long as the VM (--timeout), and no longer than the policy's
        // per-call limit: --timeout is the VM's budget, not a request for more than the policy gives.
        var commandSeconds = timeout
        if let cap = loaded?.policy.limits.callTimeout {
            let capSeconds = Double(cap.components.seconds) + Double(cap.components.attoseconds) / 1e18
            commandSeconds = min(commandSeconds ?? capSeconds, capSeconds)
        }
        let request = ExecRequest(argv: argv, env: Self.defaultEnvironment,
                                  cwd: "/", timeoutMilliseconds: commandSeconds.map { UInt32(min($0 * 1000, Double(UInt32.max))) })
        var options = VMSession.Options(name: vmName)
        options.jail = machine.jail
        options.timeout = machine.timeout
        options.console = console
        options.stopOnSignals = true
        options.policy = loaded
        options.auditPath = governance.audit
        options.disks = disks
        options.rootImage = rootImage
        options.overlaySize = machine.overlay
        var observations: [CallObservation] = []
        let session = try VMSession.run(config, options, log: log, agents: AgentHosting(store: store, tape: tape), registry: registry,
                                        environment: host) { gateway throws(GatewayError) in
            if record != nil { gateway.observe = { observations.append($0) } }
            return try gateway.exec(request, input: interactive ? .descriptor(0) : .none) { isStdout, bytes in
                emit(bytes, to: isStdout ? 1 : 2)
            }
        }
        if let record, var recording {
            recording.calls = observations
            recording.bucketTimes = clock?.told ?? []
            do { try SessionRecordFile.write(record, recording) } catch {
                throw CLIError("cannot write the session record \(record): \(error)", .vmFailed)
            }
            for (index, call) in observations.enumerated() where call.tool == GovernedBrain.tool || call.tool == GovernedEgress.httpTool {
                if call.allowed && call.exchange == nil {
                    host.warn("call \(index + 1) (\(call.tool)) was not kept for replay: its exchange did not complete or was too large")
                }
            }
        }

        switch session.result {
        case .success(let report):
            exitWith(report.status)
        case .failure(.guest(.remote(let reply))) where reply.code == .notFound:
            throw CLIError("\(argv[0]): command not found in the guest", .notFound)
        case .failure(.guest(.remote(let reply))) where reply.code == .permissionDenied:
            throw CLIError("\(argv[0]): permission denied in the guest", .cannotRun)
        case .failure(.denied(let decision)):
            throw CLIError("\(argv[0]): \(GatewayError.denied(decision))", .denied)
        case .failure(let error):
            if !console { ConsoleLog.showTail(of: session.consoleLog, warn: host.warn) }
            throw CLIError("\(error) (momin-vmm \(session.vmStatus))", .vmFailed)
        }
    }
}
