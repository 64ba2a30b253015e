import Audit
import Glibc
import Images
import MachineConfig

/// What a microVM is asked to be, as `momin run` and `momin start` take it on the command line and
/// `momin serve` in a create request: checked here, once, for both. Messages name the CLI's options.
public struct MachineRequest: Sendable {
    /// The bzImage to boot (default: the guest image's kernel).
    public var kernel: String?
    /// An initramfs (default: the guest image's, when `kernel` is not given).
    public var initrd: String?
    public var commandLine = MachineConfiguration.defaultCommandLine
    public var vcpus = 1
    public var memoryMiB = 256
    /// Seconds the guest may run (0: no limit).
    public var timeout: Double = 0
    public var kvmDevice = "/dev/kvm"
    public var jail: VMJail.Mode = .jailed
    /// 64 hexadecimal digits seeding virtio-rng.
    public var entropySeed: String?
    /// `--disk` specifications (docs/disks.md).
    public var disks: [String] = []
    /// A root image: a store name or digest, or a path (with a /).
    public var image: String?
    /// The writable layer's size over `image`.
    public var overlay: String?
    /// A scratch disk's size (`momin start` only).
    public var scratch: String?

    public init() {}

    /// The disks asked for, each parsed, and checked together.
    public func diskRequests() throws(HostError) -> [DiskRequest] {
        let requests = try disks.map { text throws(HostError) in try DiskRequest.parse(text) }
        try DiskRequest.checkSet(requests + (image.map { [DiskRequest.rootImage($0)] } ?? []))
        if let overlay {
            guard image != nil else { throw .badInput("--overlay \(overlay): there is no --image to lay it over") }
            try DiskRequest.checkOverlaySize(overlay)
        }
        return requests
    }

    /// `image` as a file: a path (anything with a /) as it is, else the store's name or digest.
    public func rootImagePath(in store: ImageStore) throws(HostError) -> String? {
        guard let image else { return nil }
        if image.contains("/") { return image }
        do { return store.imagePath(try store.resolve(image)) } catch {
            throw .badInput("--image \(image): \(error) (a file's path needs a /, e.g. ./\(image))")
        }
    }

    /// The machine, with `extraCommandLine` appended to the kernel's command line.
    public func configuration(extraCommandLine: String? = nil) throws(HostError) -> MachineConfiguration {
        guard vcpus >= 1 else { throw .badInput("--vcpus \(vcpus) is out of range: at least 1 vCPU is needed") }
        guard memoryMiB >= 1 else { throw .badInput("--memory \(memoryMiB) MiB is out of range") }
        guard timeout >= 0, timeout.isFinite else { throw .badInput("--timeout \(timeout) is not a number of seconds ≥ 0") }
        let image = GuestImage.default
        let kernelPath = kernel ?? image.kernel
        let initrdPath = initrd ?? (kernel == nil ? image.initrd : nil)
        let line = extraCommandLine.map { commandLine + " " + $0 } ?? commandLine
        var config = MachineConfiguration(kernelPath: kernelPath, initrdPath: initrdPath, commandLine: line,
                                          vcpus: vcpus, memoryMiB: UInt64(memoryMiB), kvmPath: kvmDevice)
        if let entropySeed {
            guard let seed = EntropySeed.parse(entropySeed) else {
                throw .badInput("--entropy-seed \(entropySeed) is not 64 hexadecimal digits")
            }
            config.entropySeed = seed
        }
        return config
    }
}

/// The governance a VM runs under: its policy, and the signed audit log its calls go to.
public struct GovernanceRequest: Sendable {
    public var policy: String?
    public var audit: String?
    public var auditKey: String?
    public var witness: String?

    public init(policy: String? = nil, audit: String? = nil, auditKey: String? = nil, witness: String? = nil) {
        self.policy = policy
        self.audit = audit
        self.auditKey = auditKey
        self.witness = witness
    }

    /// A witness needs a log, and may not be the log.
    public func check() throws(HostError) {
        guard let witness else { return }
        guard let audit else { throw .badInput("--witness \(witness) needs --audit: it witnesses the audit log's heads") }
        if Paths.absolute(witness) == Paths.absolute(audit) { throw .badInput("--witness \(witness) is the audit log itself") }
    }

    /// The policy and its exact bytes; a bad file is bad input. Its resource caps must hold
    /// the machine asked for, and a brain section needs the relay's key. Either refusal is a
    /// refused run: with a log it is logged (`run-refused`, after the `policy-load` of a policy
    /// that loaded) before it is thrown. `vm` names the run, given the policy's agent.
    public func loadPolicy(for machine: MachineRequest, environment: HostEnvironment,
                           vm: (_ agent: String?) -> String) throws(HostError) -> LoadedPolicy? {
        guard let policy else { return nil }
        let loaded: LoadedPolicy
        do { loaded = try LoadedPolicy.load(path: policy) } catch { throw refused(error, vm: vm(nil)) }
        do { try loaded.allow(vcpus: machine.vcpus, memoryMiB: machine.memoryMiB) } catch {
            throw refused(error, vm: vm(loaded.policy.agent), before: [loaded.loadEvent])
        }
        if loaded.policy.brain != nil {
            do { _ = try environment.brainCredential() } catch { throw refused(error, vm: vm(loaded.policy.agent), before: [loaded.loadEvent]) }
        }
        return loaded
    }

    /// `refusal`, logged first when there is a log.
    public func refused(_ refusal: HostError, vm: String, before: [Lifecycle] = []) -> HostError {
        guard let audit else { return refusal }
        return RefusedRun.record(refusal, vm: vm, before: before, auditPath: audit,
                                 options: AuditLog.Options(keyPath: auditKey, witnessPath: witness))
    }
}
