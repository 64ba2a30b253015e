import ArgumentParser
import Doors
import Gateway
import Glibc
import Host
import MachineConfig

/// `momin replay FILE`: runs a recorded session again — the same kernel, initrd and policy
/// (checked by digest), the same machine, the same entropy seed — and reports which calls gave
/// identical observations (decision, status, output digest), as a percentage.
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a recorded session again and report which calls gave identical results.",
        discussion: """
            Exit status: 0 when every call gave what was recorded, 1 when some did not, 2 on bad \\
            input (an unreadable record, or a kernel, initrd or policy that is not the recorded \\
            one), 125 when the VM failed.
            """)

    @Argument(help: "The session record (momin run --record FILE).") var file: String
    @Option(help: "Stop the guest and fail after this many seconds (0: no limit).") var timeout: Double = 0
    @Flag(help: "Copy the guest's serial console to stderr.") var console = false
    @Flag(help: "Never go through the nested rig.") var noRig = false
    @Flag(help: "For debugging only: run momin-vmm without its jail and cgroup.") var noJail = false

    func run() throws {
        let record = try SessionRecordFile.read(file)
        // The inputs must be the recorded ones, byte for byte.
        try SessionRecordFile.checkInputs(of: record)
        let loaded = try record.policy.map { p throws(HostError) in try LoadedPolicy.load(path: p.path) }
        var config = MachineConfiguration(kernelPath: record.kernel.path, initrdPath: record.initrd?.path,
                                          commandLine: record.commandLine, vcpus: record.vcpus, memoryMiB: record.memoryMiB)
        config.entropySeed = record.seed
        let host = hostEnvironment()
        try VMMLauncher(host).preflight(config)
        try Rig.check(config, noRig: noRig)

        let requests = try SessionRecordFile.requests(of: record, path: file)
        var options = VMSession.Options(name: "replay-\(getpid())")
        options.jail = noJail ? .unjailed : .jailed
        options.timeout = timeout
        options.console = console
        options.policy = loaded
        var observations: [CallObservation] = []
        let session = try VMSession.run(config, options, log: nil, agents: nil, registry: try VMRegistry.open(host),
                                        environment: host) { gateway throws(GatewayError) in
            gateway.observe = { observations.append($0) }
            for request in requests {
                do throws(GatewayError) { _ = try gateway.exec(request, input: .none) { _, _ in } } catch {
                    if case .denied = error { continue }  // observed as a denial
                    throw error
                }
            }
        }
        if case .failure(let error) = session.result {
            if !console { ConsoleLog.showTail(of: session.consoleLog, warn: host.warn) }
            throw CLIError("\(error) (momin-vmm \(session.vmStatus))", .vmFailed)
        }
        var same = 0
        for (index, recorded) in record.calls.enumerated() {
            let now = index < observations.count ? observations[index] : nil
            if now == recorded {
                same += 1
                print("call \(index + 1): identical")
            } else {
                print("call \(index + 1): differs: recorded \(Self.describe(recorded)), now \(now.map(Self.describe) ?? "no result")")
            }
        }
        let total = record.calls.count
        let percent = total == 0 ? 100.0 : Double(same) * 100 / Double(total)
        print("replay: \(same) of \(total) calls identical (\(Self.format(percent))%)")
        if same != total { Glibc.exit(ExitStatus.failure.rawValue) }
    }

    static func describe(_ call: CallObservation) -> String {
        guard call.allowed else { return "denied by \(call.rule)" }
        return "status \(call.status.map(String.init) ?? "-"), \(call.byteCount) bytes, sha256 \(call.digest?.hex.prefix(16) ?? "-")…"
    }

    static func format(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
