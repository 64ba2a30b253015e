import Devices
import KVM

/// Why a vCPU stopped running the guest.
public enum StopReason: Equatable, Sendable, CustomStringConvertible {
    /// HLT with no in-kernel irqchip (only hand-made test guests do this).
    case halted
    /// KVM_EXIT_SHUTDOWN: a triple fault.
    case tripleFault
    case internalError(suberror: UInt32)
    case failEntry(reason: UInt64)
    case systemEvent(type: UInt32)
    case unhandledExit(reason: UInt32)

    public var description: String {
        switch self {
        case .halted: "the vCPU halted"
        case .tripleFault: "triple fault (KVM_EXIT_SHUTDOWN)"
        case .internalError(let s): "KVM internal error (suberror \(s))"
        case .failEntry(let r): "VM entry failed (hardware reason 0x\(String(r, radix: 16)))"
        case .systemEvent(let t): "system event \(t)"
        case .unhandledExit(let r): "unhandled exit reason \(r)"
        }
    }
}

/// What the vCPU loop does after an exit.
public enum ExitAction: Equatable, Sendable {
    /// Run the guest again; `input` answers an I/O or MMIO read.
    case resume(input: [UInt8]?)
    case stop(StopReason)
}

/// Routes vCPU exits to the port-I/O and MMIO buses. A pure function of the exit and the buses,
/// so it is tested with made-up exits and fake devices.
public struct ExitHandler: Sendable {
    public let portIO: Bus
    public let mmio: Bus

    public init(portIO: Bus, mmio: Bus) {
        self.portIO = portIO
        self.mmio = mmio
    }

    public func handle(_ exit: VCPUExit) -> ExitAction {
        switch exit {
        case .ioIn(let port, let size, let count):
            // String input (INS) reads the same port `count` times.
            var bytes = [UInt8]()
            bytes.reserveCapacity(size * count)
            for _ in 0..<count { bytes += portIO.read(UInt64(port), size: size) }
            return .resume(input: bytes)
        case .ioOut(let port, let size, let data):
            var i = 0
            while i + size <= data.count {
                portIO.write(UInt64(port), data: Array(data[i..<i + size]))
                i += size
            }
            return .resume(input: nil)
        case .mmioRead(let address, let size):
            return .resume(input: mmio.read(address, size: size))
        case .mmioWrite(let address, let data):
            mmio.write(address, data: data)
            return .resume(input: nil)
        case .interrupted:
            return .resume(input: nil)
        case .halt:
            return .stop(.halted)
        case .shutdown:
            return .stop(.tripleFault)
        case .internalError(let s):
            return .stop(.internalError(suberror: s))
        case .failEntry(let r):
            return .stop(.failEntry(reason: r))
        case .systemEvent(let t):
            return .stop(.systemEvent(type: t))
        case .unhandled(let r):
            return .stop(.unhandledExit(reason: r))
        }
    }
}
