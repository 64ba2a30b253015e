import Devices
import KVM
import MachineConfig
import Seccomp

/// The seccomp side of momin-vmm: each thread class's profile, in the chosen mode.
///
/// Order (filters are per thread and stack; a thread inherits its creator's):
/// 1. `validate()` on the main thread, before anything else: a malformed profile stops start-up.
/// 2. The main thread starts the signal watcher, the device thread and the vCPU threads; each
///    installs its own filter first thing, before it touches guest data or enters KVM_RUN.
/// 3. The main thread installs `.main` last and creates no threads after it.
public struct Confinement: Sendable {
    public var mode: SeccompMode
    /// `--report-memory`: the vCPU that sees boot-complete reads /proc/self/smaps.
    public var reportsMemory: Bool
    /// A rule for a syscall no kernel has, for the test that a malformed profile stops start-up
    /// (`momin-vmm --seccomp-check-malformed`).
    public var malformedForTesting = false
    /// The disks' descriptors, which the device thread alone may read and write (virtio-blk).
    public var disks: [DiskDescriptor] = []

    public init(mode: SeccompMode, reportsMemory: Bool = false) {
        self.mode = mode
        self.reportsMemory = reportsMemory
    }

    public static let off = Confinement(mode: .off)

    public func profile(_ threadClass: SeccompThreadClass) -> SeccompProfile {
        var profile = switch threadClass {
        case .main: SeccompProfile.main
        case .devices: disks.isEmpty ? SeccompProfile.deviceLoop
            : SeccompProfile.deviceLoop(disks: disks, fallocateModes: DiskFile.fallocateModes)
        case .vcpu: SeccompProfile.vcpu(kvmRequests: KVMRequests.vcpuThread, readsOwnMemoryUse: reportsMemory)
        }
        if malformedForTesting {
            profile.rules.append(SyscallRule("momin_no_such_syscall", reason: "injected by --seccomp-check-malformed"))
        }
        return profile
    }

    /// Builds every class's filter once and drops it: what would fail later fails now.
    public func validate() throws(VMMError) {
        guard let action = mode.action else { return }
        for c in SeccompThreadClass.allCases {
            do { _ = try profile(c).filter(action).compile() } catch { throw .seccompProfile(c.rawValue, error) }
        }
    }

    /// The filter for one thread of `threadClass`, built on the calling thread (it allocates);
    /// the thread it is for installs it. Nil when seccomp is off.
    public func prepare(_ threadClass: SeccompThreadClass) throws(SeccompError) -> ThreadFilter? {
        guard let action = mode.action else { return nil }
        return ThreadFilter(threadClass: threadClass, compiled: try profile(threadClass).filter(action).compile(),
                            trap: mode == .trap)
    }
}

/// One thread's compiled filter, to be installed by that thread.
public final class ThreadFilter: Sendable {
    public let threadClass: SeccompThreadClass
    let compiled: CompiledSyscallFilter
    let trap: Bool

    init(threadClass: SeccompThreadClass, compiled: CompiledSyscallFilter, trap: Bool) {
        self.threadClass = threadClass
        self.compiled = compiled
        self.trap = trap
    }

    /// Confines the calling thread to its class's syscalls.
    public func install() throws(SeccompError) {
        if trap { SeccompTrap.register(threadClass) }
        try compiled.install()
    }
}

extension SeccompMode {
    /// The filters' default action; nil when off.
    var action: SyscallFilter.Action? {
        switch self {
        case .kill: .killProcess
        case .trap: .trap
        case .log: .log
        case .off: nil
        }
    }
}
