/// The command line of `momin-vmm`, the process that holds one microVM: a fixed, internal
/// interface written by `momin` (which has already checked what the user typed), parsed here
/// without Foundation or an argument-parsing library so the VMM process stays small.
///
///     momin-vmm --kernel PATH [--initrd PATH] [--cmdline STR] [--vcpus N] [--memory MiB]
///               [--timeout S] [--vsock-socket PATH [--vsock-cid N]] [--kvm-device PATH]
///               [--entropy-seed HEX64] [--host-cpus N,N...] [--disk SPEC]... [--report-memory]
///               [--new-session] [--seccomp kill|trap|log|off] [--liveness-fd N] [--preflight]
///
/// `--disk PATH[,ro|,rw][,serial=S][,bps=N][,iops=N][,bps-burst=N][,iops-burst=N]` adds a
/// virtio-blk disk (see `DiskConfiguration`), in order: the first is the guest's /dev/vda.
///
/// `--preflight` checks the machine (kernel, initrd, disks, memory, vCPUs, the KVM device) the way a
/// boot would, and exits: 0 when it would start, 2 with one line naming what is wrong. It is
/// how `momin` refuses bad input without linking the VMM itself. `--help` prints the usage.
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
    /// Check the machine and exit, booting nothing.
    public var preflightOnly = false
    /// An inherited pipe whose other end the launcher holds while it lives: when it hangs up,
    /// the VM stops as on SIGTERM (a launcher killed with SIGKILL leaves no VM behind).
    public var livenessFD: Int32?

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        /// `--help` or `-h`: not an error to report, but the usage to print.
        case helpRequested
        case unknownOption(String)
        case missingValue(String)
        case badNumber(option: String, value: String)
        case badSeed(String)
        case badCPUList(String)
        case missingKernel
        case badSeccompMode(String)
        case badDescriptor(String)
        /// One `--disk` argument, and what is wrong with it.
        case badDisk(spec: String, DiskConfiguration.SpecError)
        case tooManyDisks(limit: Int)
        case duplicateDiskSerial(String)
        case duplicateDiskPath(String)

        public var description: String {
            switch self {
            case .helpRequested: VMMArguments.usage
            case .unknownOption(let o): "unknown option \(o)"
            case .missingValue(let o): "\(o) needs a value"
            case .badNumber(let o, let v): "\(o) \(v) is not a valid number"
            case .badSeed(let v): "--entropy-seed \(v) is not 64 hexadecimal digits"
            case .badCPUList(let v): "--host-cpus \(v) is not a comma-separated list of CPU numbers"
            case .missingKernel: "--kernel is required"
            case .badSeccompMode(let m): "--seccomp \(m) is not one of kill, trap, log, off"
            case .badDescriptor(let v): "--liveness-fd \(v) is not an inherited descriptor above 2"
            case .badDisk(let spec, let problem): "--disk \(spec): \(problem)"
            case .tooManyDisks(let limit): "--disk is given more than \(limit) times (at most \(limit) disks)"
            case .duplicateDiskSerial(let s): "--disk serial=\(s) is given to two disks"
            case .duplicateDiskPath(let p): "--disk \(p) is given twice"
            }
        }
    }

    /// What `momin-vmm --help` prints.
    public static let usage = """
        usage: momin-vmm --kernel PATH [--initrd PATH] [--cmdline STR] [--vcpus N] [--memory MiB]
                         [--timeout S] [--vsock-socket PATH [--vsock-cid N]] [--kvm-device PATH]
                         [--entropy-seed HEX64] [--host-cpus N,N...] [--disk SPEC]... [--report-memory]
                         [--new-session] [--seccomp kill|trap|log|off] [--liveness-fd N] [--preflight]
        Holds one microVM: boots the kernel with its console on stdout, until the guest powers off
        or reboots, SIGTERM, or --timeout. Started by momin (momin boot, run, start), which checks
        what the user typed first; --preflight checks the machine and exits without booting.
        --disk PATH[,ro|,rw][,serial=S][,bps=N][,iops=N][,bps-burst=N][,iops-burst=N]
                         a virtio-blk disk, read-only unless rw; the first is /dev/vda, then vdb...
                         (at most 8). serial: up to 20 printable ASCII characters (GET_ID); bps and
                         iops: bytes and requests per second, bursts one second's worth unless
                         given. A comma inside PATH or S is written twice.
        """

    public static func parse(_ arguments: [String]) throws(ParseError) -> VMMArguments {
        var config = MachineConfiguration(kernelPath: "")
        var timeout: Double?
        var reportMemory = false
        var newSession = false
        var seccomp = SeccompMode.kill
        var seccompMalformed = false
        var preflightOnly = false
        var livenessFD: Int32?
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
            case "--disk":
                let text = try value(option)
                guard config.disks.count < MachineConfiguration.maximumDisks else {
                    throw .tooManyDisks(limit: MachineConfiguration.maximumDisks)
                }
                let disk: DiskConfiguration
                do { disk = try DiskConfiguration.parse(text) } catch { throw .badDisk(spec: text, error) }
                if let serial = disk.serial, config.disks.contains(where: { $0.serial == serial }) {
                    throw .duplicateDiskSerial(serial)
                }
                guard !config.disks.contains(where: { $0.path == disk.path }) else { throw .duplicateDiskPath(disk.path) }
                config.disks.append(disk)
            case "--report-memory": reportMemory = true
            case "--new-session": newSession = true
            case "--seccomp":
                let text = try value(option)
                guard let mode = SeccompMode(rawValue: text) else { throw .badSeccompMode(text) }
                seccomp = mode
            case "--seccomp-check-malformed": seccompMalformed = true
            case "--preflight": preflightOnly = true
            case "--liveness-fd":
                let text = try value(option)
                guard let fd = Int32(text), fd > 2, fd < 1024 else { throw .badDescriptor(text) }
                livenessFD = fd
            case "--help", "-h": throw .helpRequested
            default: throw .unknownOption(option)
            }
            i += 1
        }
        guard !config.kernelPath.isEmpty else { throw .missingKernel }
        if let vsockPath { config.vsock = VsockConfiguration(guestCID: vsockCID, socketPath: vsockPath) }
        return VMMArguments(configuration: config, timeout: timeout, reportMemory: reportMemory, newSession: newSession,
                            seccomp: seccomp, seccompMalformedForTesting: seccompMalformed, preflightOnly: preflightOnly,
                            livenessFD: livenessFD)
    }

    /// The command line that makes `momin-vmm` run `configuration` (what `parse` reads back).
    public static func render(_ configuration: MachineConfiguration, timeout: Double?, reportMemory: Bool = false,
                              newSession: Bool = false, seccomp: SeccompMode = .kill, preflightOnly: Bool = false,
                              livenessFD: Int32? = nil) -> [String] {
        var args = ["--kernel", configuration.kernelPath]
        if let initrd = configuration.initrdPath { args += ["--initrd", initrd] }
        args += ["--cmdline", configuration.commandLine, "--vcpus", String(configuration.vcpus),
                 "--memory", String(configuration.memoryMiB), "--kvm-device", configuration.kvmPath]
        if let timeout { args += ["--timeout", String(timeout)] }
        if let vsock = configuration.vsock { args += ["--vsock-socket", vsock.socketPath, "--vsock-cid", String(vsock.guestCID)] }
        if let seed = configuration.entropySeed { args += ["--entropy-seed", EntropySeed.hex(seed)] }
        if let cpus = configuration.hostCPUs { args += ["--host-cpus", cpus.map(String.init).joined(separator: ",")] }
        for disk in configuration.disks { args += ["--disk", disk.spec] }
        if reportMemory { args.append("--report-memory") }
        if newSession { args.append("--new-session") }
        if seccomp != .kill { args += ["--seccomp", seccomp.rawValue] }
        if preflightOnly { args.append("--preflight") }
        if let livenessFD { args += ["--liveness-fd", String(livenessFD)] }
        return args
    }
}
