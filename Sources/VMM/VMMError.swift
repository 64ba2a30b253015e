import ACPI
import Devices
import GuestMemory
import KVM
import LinuxBoot
import Seccomp

/// Why a machine could not be built or run. Cases read as the one-line message a user sees.
public enum VMMError: Error, CustomStringConvertible {
    case fileUnreadable(role: String, path: String, reason: String)
    /// A disk that cannot be opened as configured, or whose size is not whole sectors.
    case invalidDisk(path: String, reason: String)
    case invalidVCPUCount(requested: Int, hostLimit: Int)
    case invalidMemory(String)
    case boot(BootError)
    case kvm(KVMError)
    case memory(GuestMemoryError)
    case acpi(ACPIError)
    case bus(BusError)
    case thread(String)
    case device(String)
    case seccomp(SeccompError)
    /// A thread class's profile did not build (named by class).
    case seccompProfile(String, SeccompError)

    public var description: String {
        switch self {
        case .fileUnreadable(let role, let path, let reason): "cannot read \(role) \(path): \(reason)"
        case .invalidDisk(let path, let reason): "disk \(path): \(reason)"
        case .invalidVCPUCount(let n, let limit): "--vcpus \(n) is out of range: this host allows 1 to \(limit)"
        case .invalidMemory(let why): why
        case .boot(let e): e.description
        case .kvm(let e): e.description
        case .memory(let e): e.description
        case .acpi(let e): "ACPI tables: \(e)"
        case .bus(let e): e.description
        case .thread(let why): why
        case .device(let why): why
        case .seccomp(let e): e.description
        case .seccompProfile(let c, let e): "\(e) (in the \(c) thread profile)"
        }
    }

    /// True for errors caused by what the user asked for (bad paths, sizes, counts), as opposed
    /// to the host failing; the CLI exits 2 for these.
    public var isUsageError: Bool {
        switch self {
        case .fileUnreadable, .invalidDisk, .invalidVCPUCount, .invalidMemory, .boot: true
        case .kvm(.openDevice): true
        default: false
        }
    }
}
