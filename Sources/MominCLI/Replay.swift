import ArgumentParser
import Buckets
import Doors
import Egress
import Gateway
import Glibc
import Host
import MachineConfig
import POSIX

/// `momin replay FILE`: runs a recorded session again — the same kernel, initrd, policy, root
/// image and disks (checked by digest), the same machine, the same entropy seed — with the
/// model's answers and plain HTTP responses served from the recording, offline, and reports
/// which calls gave identical observations, as a percentage (docs/replay.md).
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a recorded session again, offline, and report which calls gave identical results.",
        discussion: """
            The guest's model calls and plain HTTP requests are answered from FILE.exchanges/, \
            nothing leaves the host; a request the recording has no answer for is answered 502 \
            and the report shows where it diverged. Bucket calls go to an empty scratch store, \
            removed afterwards. Exit status: 0 when every call gave what was recorded, 1 when \
            some did not, 2 on bad input (an unreadable record, or a kernel, initrd, policy, image \
            or disk that is not the recorded one), 125 when the VM failed.
            """)

    @Argument(help: "The session record (momin run --record FILE).") var file: String
    @Option(help: "Stop the guest and fail after this many seconds (0: no limit).") var timeout: Double = 0
    @Flag(help: "Copy the guest's serial console to stderr.") var console = false
    @Flag(help: "Never go through the nested rig.") var noRig = false
    @Flag(help: "For debugging only: run momin-vmm without its jail and cgroup.") var noJail = false

    func run() throws {
        let record = try SessionRecordFile.read(file)
        // The inputs must be the recorded ones, byte for byte.
        let disks = try SessionRecordFile.disks(of: record, path: file)
        try SessionRecordFile.checkInputs(of: record, disks: disks)
        let loaded = try record.policy.map { p throws(HostError) in try LoadedPolicy.load(path: p.path) }
        var config = MachineConfiguration(kernelPath: record.kernel.path, initrdPath: record.initrd?.path,
                                          commandLine: record.commandLine, vcpus: record.vcpus, memoryMiB: record.memoryMiB)
        config.entropySeed = record.seed
        let host = hostEnvironment()
        try VMMLauncher(host).preflight(config)
        let exchanges = ExchangeStore.directory(forRecord: file)
        let hasExchanges = access(exchanges, F_OK) == 0
        // A replay writes nothing beside the record: the store is opened only if it is there, and
        // it must be there when a call kept an exchange.
        if !hasExchanges, let index = record.calls.firstIndex(where: { $0.exchange != nil }) {
            throw CLIError.usage("\(file): call \(index + 1)'s exchange is in \(exchanges), which is missing")
        }
        try Rig.check(config, noRig: noRig, drives: ([record.image?.path].compactMap { $0 }) + disks.map(\.path),
                      files: [file] + [record.policy?.path].compactMap { $0 } + (hasExchanges ? [exchanges] : []))

        let requests = try SessionRecordFile.requests(of: record, path: file)
        let recorded: RecordedExchanges
        do {
            let store = try hasExchanges ? ExchangeStore(directory: exchanges, create: false) : nil
            recorded = RecordedExchanges(store: store, calls: record.calls)
        } catch {
            throw CLIError.usage("\(file): the exchange store: \(error)")
        }
        let registry = try VMRegistry.open(host)
        var options = VMSession.Options(name: "replay-\(getpid())")
        options.jail = noJail ? .unjailed : .jailed
        options.timeout = timeout
        options.console = console
        options.policy = loaded
        options.disks = disks
        options.rootImage = record.image?.path
        options.overlaySize = record.overlay
        var observations: [CallObservation] = []
        // Made last, and removed as soon as the session is over, whichever way it ended (the
        // exits below skip defers).
        let scratch = try record.buckets ? ScratchBuckets(clock: .replaying(record.bucketTimes)) : nil
        let session: VMSession.End<Void>
        do {
            session = try VMSession.run(config, options, log: nil, agents: AgentHosting(store: scratch?.store, tape: .replaying(recorded)),
                                        registry: registry, environment: host) { gateway throws(GatewayError) in
                gateway.observe = { observations.append($0) }
                for request in requests {
                    do throws(GatewayError) { _ = try gateway.exec(request, input: .none) { _, _ in } } catch {
                        if case .denied = error { continue }  // observed as a denial
                        throw error
                    }
                }
            }
        } catch {
            scratch?.remove()
            throw error
        }
        scratch?.remove()
        if case .failure(let error) = session.result {
            if !console { ConsoleLog.showTail(of: session.consoleLog, warn: host.warn) }
            throw CLIError("\(error) (momin-vmm \(session.vmStatus))", .vmFailed)
        }
        let report = ReplayReport(recorded: record.calls, replayed: observations,
                                  recordedRequest: { try? recorded.store?.read($0).get() },
                                  divergedRequest: { recorded.firstDiverged(tool: $0) })
        for line in report.lines { print(line) }
        if !report.identical { Glibc.exit(ExitStatus.failure.rawValue) }
    }
}

/// An empty bucket store for a replay, in a directory of its own, removed afterwards; its clock
/// tells the recorded times.
struct ScratchBuckets {
    let directory: String
    let store: BucketStore

    init(clock: RecordedClock) throws {
        var template = Array("/tmp/momin-replay-buckets-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw CLIError("cannot make a scratch bucket store: \(String(cString: strerror(errno)))", .failure)
        }
        directory = String(cString: made)
        var options = BucketStore.Options()
        options.clock = { clock.now() }
        do { store = try BucketStore(path: directory + "/buckets.db", options: options) } catch {
            rmdir(directory)
            throw CLIError("cannot make a scratch bucket store: \(error)", .failure)
        }
    }

    func remove() {
        try? store.close()
        for name in (try? FileIO.listDirectory(directory)) ?? [] { unlink(directory + "/" + name) }
        rmdir(directory)
    }
}
