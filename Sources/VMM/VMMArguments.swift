import Seccomp

/// The command line of `momin-vmm`, the process that holds one microVM: a fixed, internal
/// interface written by `momin` (which has already checked what the user typed), parsed here
/// without Foundation or an argument-parsing library so the VMM process stays small.
///
///     momin-vmm --kernel PATH [--initrd PATH] [--cmdline STR] [--vcpus N] [--memory MiB]
///               [--timeout S] [--vsock-socket PATH [--vsock-cid N]] [--kvm-device PATH]
///               [--entropy-seed HEX64] [--host-cpus N,N...] [--report-memory] [--new-session]
///               [--seccomp kill|trap|log|off]
///
/// Hidden, for tests (Tests/cli/seccomp.sh): `--seccomp-check-malformed` adds a rule for a
/// syscall that does not exist, so start-up must stop; and, instead of a VM,
/// `momin-vmm --seccomp-check CLASS CALL [--seccomp MODE]` (see `SeccompSelfTest`).
public struct VMMArguments: Equatable, Sendable {
    public var configuration: MachineConfiguration
    /// Seconds before the VMM stops the guest and fails; nil for no limit.
    public var timeout: Double?
    public var reportMemory = false
    /// Start a new session (setsid), so a long-lived VM outlives the terminal that started it.
    public var newSession = false
    /// Per-thread seccomp filters: what a syscall off a thread's list does (docs/seccomp.md).
    public var seccomp: SeccompMode = .kill
    /// Adds a rule no kernel can satisfy to every profile (tests that start-up stops).
    public var seccompMalformedForTesting = false

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case unknownOption(String)
        case missingValue(String)
        case badNumber(option: String, value: String)
        case badSeed(String)
        case badCPUList(String)
        case missingKernel
        case badSeccompMode(String)

        public var description: String {
            switch self {
            case .unknownOption(let o): "unknown option \(o)"
            case .missingValue(let o): "\(o) needs a value"
            case .badNumber(let o, let v): "\(o) \(v) is not a valid number"
            case .badSeed(let v): "--entropy-seed \(v) is not 64 hexadecimal digits"
            case .badCPUList(let v): "--host-cpus \(v) is not a comma-separated list of CPU numbers"
            case .missingKernel: "--kernel is required"
            case .badSeccompMode(let m): "--seccomp \(m) is not one of kill, trap, log, off"
            }
        }
    }

    public static func parse(_ arguments: [String]) throws(ParseError) -> VMMArguments {
        var config = MachineConfiguration(kernelPath: "")
        var timeout: Double?
        var reportMemory = false
        var newSession = false
        var seccomp = SeccompMode.kill
        var seccompMalformed = false
        var vsockPath: String?
        var vsockCID: UInt64 = 3
        var i = 0
        func value(_ option: String) throws(ParseError) -> String {
            guard i + 1 < arguments.count else { throw .missingValue(option) }
            i += 1
            return arguments[i]
        }
        func number<T: LosslessStringConvertible>(_ option: String, _: T.Type) throws(ParseError) -> T {
            let text = try value(option)
            guard let n = T(text) else { throw .badNumber(option: option, value: text) }
            return n
        }
        while i < arguments.count {
            let option = arguments[i]
            switch option {
            case "--kernel": config.kernelPath = try value(option)
            case "--initrd": config.initrdPath = try value(option)
            case "--cmdline": config.commandLine = try value(option)
            case "--vcpus": config.vcpus = try number(option, Int.self)
            case "--memory": config.memoryMiB = try number(option, UInt64.self)
            case "--timeout":
                let t = try number(option, Double.self)
                guard t >= 0, t.isFinite else { throw .badNumber(option: option, value: String(t)) }
                timeout = t > 0 ? t : nil
            case "--vsock-socket": vsockPath = try value(option)
            case "--vsock-cid": vsockCID = try number(option, UInt64.self)
            case "--kvm-device": config.kvmPath = try value(option)
            case "--entropy-seed":
                let text = try value(option)
                guard let seed = EntropySeed.parse(text) else { throw .badSeed(text) }
                config.entropySeed = seed
            case "--host-cpus":
                let text = try value(option)
                let cpus = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
                guard !cpus.isEmpty, cpus.allSatisfy({ ($0 ?? -1) >= 0 && ($0 ?? 0) < 4096 }) else { throw .badCPUList(text) }
                config.hostCPUs = cpus.map { $0! }
            case "--report-memory": reportMemory = true
            case "--new-session": newSession = true
            case "--seccomp":
                let text = try value(option)
                guard let mode = SeccompMode(rawValue: text) else { throw .badSeccompMode(text) }
                seccomp = mode
            case "--seccomp-check-malformed": seccompMalformed = true
            default: throw .unknownOption(option)
            }
            i += 1
        }
        guard !config.kernelPath.isEmpty else { throw .missingKernel }
        if let vsockPath { config.vsock = VsockConfiguration(guestCID: vsockCID, socketPath: vsockPath) }
        return VMMArguments(configuration: config, timeout: timeout, reportMemory: reportMemory, newSession: newSession,
                            seccomp: seccomp, seccompMalformedForTesting: seccompMalformed)
    }

    /// The command line that makes `momin-vmm` run `configuration` (what `parse` reads back).
    public static func render(_ configuration: MachineConfiguration, timeout: Double?, reportMemory: Bool = false,
                              newSession: Bool = false, seccomp: SeccompMode = .kill) -> [String] {
        var args = ["--kernel", configuration.kernelPath]
        if let initrd = configuration.initrdPath { args += ["--initrd", initrd] }
        args += ["--cmdline", configuration.commandLine, "--vcpus", String(configuration.vcpus),
                 "--memory", String(configuration.memoryMiB), "--kvm-device", configuration.kvmPath]
        if let timeout { args += ["--timeout", String(timeout)] }
        if let vsock = configuration.vsock { args += ["--vsock-socket", vsock.socketPath, "--vsock-cid", String(vsock.guestCID)] }
        if let seed = configuration.entropySeed { args += ["--entropy-seed", EntropySeed.hex(seed)] }
        if let cpus = configuration.hostCPUs { args += ["--host-cpus", cpus.map(String.init).joined(separator: ",")] }
        if reportMemory { args.append("--report-memory") }
        if newSession { args.append("--new-session") }
        if seccomp != .kill { args += ["--seccomp", seccomp.rawValue] }
        return args
    }
}

/// The text form of an entropy seed: 64 hexadecimal digits (32 bytes).
public enum EntropySeed {
    public static let byteCount = 32

    public static func parse(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count == 64 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for i in stride(from: 0, to: 64, by: 2) {
            guard let high = nibble(digits[i]), let low = nibble(digits[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xf)]] }, as: UTF8.self)
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
