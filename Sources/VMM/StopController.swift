import Glibc

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

/// Records the first reason a machine stopped and wakes whoever waits for it.
final class StopController: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var result: MachineExit?

    init() {
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    /// The first caller wins; later reasons are ignored.
    func finish(_ exit: MachineExit) {
        pthread_mutex_lock(&mutex)
        if result == nil { result = exit }
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
    }

    var isStopped: Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return result != nil
    }

    /// Waits for `finish`, up to `seconds` (forever when nil). Nil on timeout.
    func wait(seconds: Double?) -> MachineExit? {
        var deadline = timespec()
        if let seconds {
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let total = Double(deadline.tv_sec) + Double(deadline.tv_nsec) / 1e9 + seconds
            deadline.tv_sec = Int(total)
            deadline.tv_nsec = Int((total - Double(Int(total))) * 1e9)
        }
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while result == nil {
            if seconds == nil {
                pthread_cond_wait(&condition, &mutex)
            } else if pthread_cond_timedwait(&condition, &mutex, &deadline) == ETIMEDOUT {
                break
            }
        }
        return result
    }
}
