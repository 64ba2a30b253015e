import POSIX

/// How a machine's run ended.
public enum MachineExit: Equatable, Sendable, CustomStringConvertible {
    /// ACPI S5 from the guest.
    case poweredOff
    /// i8042 or ACPI reset from the guest.
    case reset
    /// A vCPU stopped with an error exit (triple fault, internal error, …).
    case stopped(vcpu: Int, StopReason)
    /// KVM_RUN itself failed.
    case vcpuFailed(vcpu: Int, String)
    /// The run outlived its time limit.
    case timedOut(seconds: Double)
    /// The host stopped the machine (its work in the guest was done).
    case stoppedByHost
    /// A virtio device hit an error it cannot go on from (DEVICE_NEEDS_RESET, virtio 1.2
    /// §2.1.2). Linux's drivers do not reset a device for that, so the guest would sit with a
    /// dead device (for vsock: unreachable, every host client waiting): the VM stops instead.
    case deviceFailed(device: String, reason: String)

    public var description: String {
        switch self {
        case .poweredOff: "the guest powered off"
        case .reset: "the guest rebooted"
        case .stopped(let vcpu, let reason): "vCPU \(vcpu) stopped: \(reason)"
        case .vcpuFailed(let vcpu, let message): "vCPU \(vcpu) failed: \(message)"
        case .timedOut(let s): "the guest did not finish within \(s) s"
        case .stoppedByHost: "the host stopped the guest"
        case .deviceFailed(let device, let reason): "\(device) failed and needs a reset the guest cannot do: \(reason)"
        }
    }

    /// Clean ends: the guest asked to power off or reboot.
    public var isClean: Bool { self == .poweredOff || self == .reset || self == .stoppedByHost }
}

/// Records the first reason a machine stopped and wakes whoever waits for it. Its mutex and
/// condition live on the heap (`Monitor`): a pthread object must not move.
final class StopController: @unchecked Sendable {
    private let monitor = Monitor()
    private var result: MachineExit?

    /// The first caller wins; later reasons are ignored.
    func finish(_ exit: MachineExit) {
        monitor.holding {
            if result == nil { result = exit }
            monitor.broadcast()
        }
    }

    var isStopped: Bool { monitor.holding { result != nil } }

    /// Waits for `finish`, up to `seconds` (forever when nil). Nil on timeout.
    func wait(seconds: Double?) -> MachineExit? {
        let deadline = seconds.map { MonotonicClock.deadline(after: $0) }
        return monitor.holding {
            _ = monitor.wait(until: deadline) { result != nil }
            return result
        }
    }
}
