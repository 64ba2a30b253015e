import CLinux
import Glibc
import POSIX

/// The VMM's threads (vCPUs, the device loop, the signal watcher) are POSIX threads: KVM_RUN
/// blocks, and a vCPU is bound to the thread that runs it.
extension POSIXThread {
    /// Starts a joinable thread; a failure is the VMM's error.
    static func vmm(_ name: String, _ body: @escaping @Sendable () -> Void) throws(VMMError) -> POSIXThread {
        do { return try POSIXThread(name: name, body) } catch {
            throw .thread("cannot start thread \(name): \(error.reason)")
        }
    }

    /// Pins the calling thread to one host CPU (sched_setaffinity(2)); nil, or why not.
    static func pinCurrentThread(to cpu: Int) -> String? {
        guard let cpu = Int32(exactly: cpu), clinux_pin_current_thread(cpu) == 0 else { return describeErrno() }
        return nil
    }

    /// Interrupts a blocking KVM_RUN on this thread (see `VCPUKick`).
    func kick() { signal(VCPUKick.signal) }
}

/// The signal that knocks a vCPU thread out of KVM_RUN: its handler does nothing, and being
/// installed without SA_RESTART makes the ioctl return EINTR.
enum VCPUKick {
    static let signal = SIGUSR2

    static let installOnce: Void = {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(signal, &action, nil)
    }()
}

/// Monotonic microseconds, and the moment the VMM process started its work.
public enum ProcessClock {
    public static func now() -> UInt64 { MonotonicClock.nanoseconds() / 1000 }

    nonisolated(unsafe) private static var startStorage: UInt64 = 0

    /// Call first thing in main; later calls are ignored.
    public static func markStart() {
        if startStorage == 0 { startStorage = now() }
    }

    public static var start: UInt64 { startStorage }

    public static func microsecondsSinceStart() -> UInt64 { now() &- startStorage }
}
