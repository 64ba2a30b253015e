/// Everything that can stop the ACPI tables from being built. Each case reads as a message.
public enum ACPIError: Error, Equatable, CustomStringConvertible {
    /// The vCPU count is outside 1...255 (one xAPIC id per vCPU, 0xFF is reserved).
    case invalidVCPUCount(Int)
    /// The I/O APIC id equals the local APIC id of one of the vCPUs.
    case ioAPICIDConflictsWithCPU(UInt8)
    /// An OEM/creator identifier is too long or is not printable ASCII.
    case invalidIdentifier(field: String, value: String, maxLength: Int)
    /// More virtio-mmio devices than the 4096 four-character names V000...VFFF.
    case tooManyDevices(Int)
    /// A virtio-mmio window has size zero.
    case emptyDeviceWindow(index: Int)
    /// A virtio-mmio window does not fit below 4 GiB (Memory32Fixed is 32-bit, ACPI 6.5 §6.4.3.4).
    case deviceWindowNot32Bit(index: Int, base: UInt64, size: UInt64)
    /// Two virtio-mmio windows overlap.
    case overlappingDeviceWindows(Int, Int)
    /// The RSDP must sit on a 16-byte boundary (ACPI 6.5 §5.2.5.1).
    case misalignedBase(UInt64)
    /// The tables would run past the end of the 64-bit physical address space.
    case baseOutOfRange(UInt64)
    /// The tables do not fit the region reserved for them.
    case tablesTooLarge(size: Int, limit: Int)
    /// An AML name is not a valid NameString (ACPI 6.5 §20.2.2).
    case invalidName(String)
    /// An AML string holds a NUL or non-ASCII character (ACPI 6.5 §20.2.3).
    case invalidString(String)
    /// An EISA id is not three capital letters and four hex digits.
    case invalidEISAID(String)
    /// A PkgLength over 2^28 - 1 bytes cannot be encoded (ACPI 6.5 §20.2.4).
    case packageTooLong(Int)
    /// A Package holds more than 255 elements.
    case tooManyPackageElements(Int)
    /// An Extended Interrupt descriptor lists no interrupts or more than 255.
    case invalidInterruptCount(Int)

    public var description: String {
        switch self {
        case .invalidVCPUCount(let n):
            return "vCPU count \(n) is outside 1...255"
        case .ioAPICIDConflictsWithCPU(let id):
            return "I/O APIC id \(id) is also the local APIC id of a vCPU"
        case .invalidIdentifier(let field, let value, let maxLength):
            return "\(field) \"\(value)\" must be printable ASCII of at most \(maxLength) characters"
        case .tooManyDevices(let n):
            return "\(n) virtio-mmio devices exceed the limit of 4096"
        case .emptyDeviceWindow(let index):
            return "virtio-mmio device \(index) has an empty MMIO window"
        case .deviceWindowNot32Bit(let index, let base, let size):
            return "virtio-mmio device \(index) window base 0x\(hex(base)) size 0x\(hex(size)) does not fit below 4 GiB"
        case .overlappingDeviceWindows(let a, let b):
            return "virtio-mmio devices \(a) and \(b) have overlapping MMIO windows"
        case .misalignedBase(let base):
            return "ACPI base 0x\(hex(base)) is not 16-byte aligned"
        case .baseOutOfRange(let base):
            return "ACPI base 0x\(hex(base)) leaves no room for the tables"
        case .tablesTooLarge(let size, let limit):
            return "ACPI tables need \(size) bytes, more than the \(limit) reserved"
        case .invalidName(let name):
            return "\"\(name)\" is not a valid AML name"
        case .invalidString(let s):
            return "\"\(s)\" cannot be an AML string"
        case .invalidEISAID(let id):
            return "\"\(id)\" is not an EISA id (three capital letters, four hex digits)"
        case .packageTooLong(let n):
            return "AML package of \(n) bytes is too long to encode"
        case .tooManyPackageElements(let n):
            return "AML package of \(n) elements exceeds 255"
        case .invalidInterruptCount(let n):
            return "interrupt descriptor with \(n) interrupts (must be 1...255)"
        }
    }
}

func hex<T: BinaryInteger>(_ value: T) -> String {
    String(value, radix: 16, uppercase: true)
}
