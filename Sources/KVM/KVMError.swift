import Glibc

/// An errno value with its symbolic name, as the kernel reported it.
public struct Errno: Error, Equatable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(_ rawValue: Int32) { self.rawValue = rawValue }
    public static var current: Errno { Errno(errno) }

    public var name: String {
        switch rawValue {
        case EPERM: "EPERM"
        case ENOENT: "ENOENT"
        case EINTR: "EINTR"
        case EIO: "EIO"
        case EBADF: "EBADF"
        case EAGAIN: "EAGAIN"
        case ENOMEM: "ENOMEM"
        case EACCES: "EACCES"
        case EFAULT: "EFAULT"
        case EBUSY: "EBUSY"
        case EEXIST: "EEXIST"
        case ENODEV: "ENODEV"
        case EINVAL: "EINVAL"
        case ENOSPC: "ENOSPC"
        case E2BIG: "E2BIG"
        case ENXIO: "ENXIO"
        case ENOTTY: "ENOTTY"
        case ENOSYS: "ENOSYS"
        case EOPNOTSUPP: "EOPNOTSUPP"
        default: "errno \(rawValue)"
        }
    }

    public var description: String { "\(name) (\(String(cString: strerror(rawValue))))" }
}

/// What went wrong talking to KVM. Each case names the call that failed.
public enum KVMError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `open(2)` of the KVM device failed (missing, or no permission).
    case openDevice(path: String, Errno)
    /// The kernel speaks a KVM API other than the stable version 12.
    case unsupportedAPIVersion(Int32)
    /// An ioctl failed.
    case ioctl(String, Errno)
    /// A capability this VMM needs is absent.
    case missingCapability(String)
    /// `mmap(2)` of the vCPU run area failed.
    case mmap(Errno)
    /// `eventfd(2)` failed.
    case eventfd(Errno)
    /// A caller asked for something the API cannot express (e.g. too many CPUID entries).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .openDevice(let path, let e):
            "cannot open \(path): \(e)"
        case .unsupportedAPIVersion(let v):
            "KVM API version \(v) is not supported (need 12)"
        case .ioctl(let name, let e):
            "\(name) failed: \(e)"
        case .missingCapability(let name):
            "KVM lacks the capability \(name)"
        case .mmap(let e):
            "mmap of the vCPU run area failed: \(e)"
        case .eventfd(let e):
            "eventfd failed: \(e)"
        case .invalidArgument(let what):
            "invalid argument: \(what)"
        }
    }
}
