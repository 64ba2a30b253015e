import GuestMemory

/// Why a kernel could not be laid out for boot. Each case reads as the message a user sees.
public enum BootError: Error, Equatable, Sendable, CustomStringConvertible {
    case notBzImage(String)
    case unsupportedProtocol(UInt16)
    case no64BitEntry
    case commandLineTooLong(length: Int, max: Int)
    case memoryTooSmall(requestedMiB: UInt64, requiredMiB: UInt64)
    case initrdTooLarge(size: Int, availableBytes: UInt64)
    case memory(GuestMemoryError)

    public var description: String {
        switch self {
        case .notBzImage(let why):
            "not a bzImage: \(why)"
        case .unsupportedProtocol(let v):
            "boot protocol \(v >> 8).\(v & 0xff) is too old (need 2.12 or later for the 64-bit entry)"
        case .no64BitEntry:
            "the kernel has no 64-bit entry point (XLF_KERNEL_64 is clear)"
        case .commandLineTooLong(let length, let max):
            "kernel command line is \(length) bytes; this kernel accepts at most \(max)"
        case .memoryTooSmall(let requested, let required):
            "--memory \(requested) MiB is too small: this kernel and initrd need at least \(required) MiB"
        case .initrdTooLarge(let size, let available):
            "initrd (\(size >> 20) MiB) does not fit in guest memory below 4 GiB above the kernel (\(available >> 20) MiB free); raise --memory"
        case .memory(let e):
            e.description
        }
    }
}
