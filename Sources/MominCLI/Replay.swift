import ArgumentParser
import Crypto
import Doors
import Gateway
import Glibc
import Hands
import Merkle
import Policy
import POSIX
import VMM

/// Reading and writing session records (`momin run --record`, `momin replay`).
enum SessionFiles {
    struct Problem: Error, CustomStringConvertible {
        let description: String
    }

    /// SHA-256 of a file's bytes.
    static func digest(of path: String) throws(Problem) -> MerkleHash {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Problem(description: "cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var hasher = SHA256()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw Problem(description: "cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            hasher.update(data: chunk[0..<n])
        }
        return MerkleHash(bytes: Array(hasher.finalize()))!
    }

    /// Writes the record next to `path` and renames it into place, so a reader never sees half.
    static func write(_ path: String, config: MachineConfiguration, policyPath: String?, policySource: [UInt8]?,
                      calls: [CallObservation]) throws(Problem) {
        guard let seed = config.entropySeed else { throw Problem(description: "the session had no entropy seed") }
        let kernel = SessionRecord.Input(path: Rig.absolute(config.kernelPath), sha256: try digest(of: config.kernelPath))
        let initrd = try config.initrdPath.map { p throws(Problem) in SessionRecord.Input(path: Rig.absolute(p), sha256: try digest(of: p)) }
        var policy: SessionRecord.Input?
        if let policyPath, let policySource {
            policy = SessionRecord.Input(path: Rig.absolute(policyPath), sha256: MerkleHash(bytes: Array(SHA256.hash(data: policySource)))!)
        }
        let record = SessionRecord(seed: seed, vcpus: config.vcpus, memoryMiB: config.memoryMiB, commandLine: config.commandLine,
                                   kernel: kernel, initrd: initrd, policy: policy, calls: calls)
        let temporary = path + ".partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Problem(description: String(cString: strerror(errno))) }
        let written = (try? FileIO.writeAll(fd, Array(record.text.utf8))) != nil && fsync(fd) == 0
        close(fd)
        guard written, rename(temporary, path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(temporary)
            throw Problem(description: why)
        }
    }
}

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
        let record: SessionRecord
        do {
            let fd = open(file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw CLIError.usage("cannot read \(file): \(String(cString: strerror(errno)))") }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n < 0 {
                    let why = String(cString: strerror(errno))
                    close(fd)
                    throw CLIError.usage("cannot read \(file): \(why)")
                }
                if n == 0 { break }
                bytes += chunk[0..<n]
                if bytes.count > 64 << 20 { close(fd); throw CLIError.usage("\(file) is larger than 64 MiB") }
            }
            close(fd)
            do { record = try SessionRecord.parse(String(decoding: bytes, as: UTF8.self)) } catch {
                throw CLIError.usage("\(file): \(error)")
            }
        }
        // The inputs must be the recorded ones, byte for byte.
        for input in [record.kernel] + [record.initrd, record.policy].compactMap({ $0 }) {
            let now: MerkleHash
            do { now = try SessionFiles.digest(of: input.path) } catch { throw CLIError.usage(error.description) }
            guard now == input.sha256 else { throw CLIError.usage("\(input.path) is not the file the session was recorded with (SHA-256 differs)") }
        }
        let loaded: LoadedPolicy?
        do {
            loaded = try record.policy.map { p throws(PolicyError) in
                let read = try AgentPolicy.loadWithSource(path: p.path)
                return LoadedPolicy(policy: read.policy, source: read.source, path: p.path)
            }
        } catch {
            throw CLIError.usage(error.description)
        }
        var config = MachineConfiguration(kernelPath: record.kernel.path, initrdPath: record.initrd?.path,
                                          commandLine: record.commandLine, vcpus: record.vcpus, memoryMiB: record.memoryMiB)
        config.entropySeed = record.seed
        do {
            _ = try Preflight.check(config)
            try Preflight.checkKVMDevice(config.kvmPath)
        } catch { throw CLIError.usage(error.description) }
        try Run.checkRig(config, noRig: noRig)

        var requests: [ExecRequest] = []
        for (index, call) in record.calls.enumerated() {
            var decoder = FrameDecoder()
            decoder.append(call.arguments[...])
            guard case .exec(let request)? = (try? decoder.next())?.message else {
                throw CLIError.usage("\(file): call \(index + 1) is not an exec request")
            }
            requests.append(request)
        }
        var observations: [CallObservation] = []
        let session = try Run.session(config, name: "replay-\(getpid())", timeout: timeout, console: console,
                                      jailing: { [noJail] in try VMJail.make(noJail: noJail, vm: $0, $1, socketDirectory: $2) }, policy: loaded,
                                      log: nil, auditPath: nil) { gateway throws(GatewayError) in
            gateway.observe = { observations.append($0) }
            for request in requests {
                do throws(GatewayError) { _ = try gateway.exec(request, input: .none) { _, _ in } } catch {
                    if case .denied = error { continue }  // observed as a denial
                    throw error
                }
            }
        }
        if case .failure(let error) = session.result {
            if !console { Run.showTail(of: session.consoleLog) }
            throw CLIError(message: "\(error) (momin-vmm \(session.vmStatus))", code: Run.vmFailed)
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
        if same != total { Glibc.exit(1) }
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
