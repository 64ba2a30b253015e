import CLinux
import Glibc

/// A joinable POSIX thread running a Swift closure: vCPUs get real threads of their own, since
/// KVM_RUN blocks and a vCPU is bound to the thread that runs it.
final class NativeThread: @unchecked Sendable {
    private var handle = pthread_t()
    private final class Box { let body: () -> Void; init(_ body: @escaping () -> Void) { self.body = body } }
    private let done = Completion()

    init(name: String, _ body: @escaping @Sendable () -> Void) throws(VMMError) {
        let label = String(name.prefix(15))
        let done = self.done
        let box = Unmanaged.passRetained(Box({
            NativeThread.nameCurrentThread(label)
            body()
            done.signal()
        })).toOpaque()
        let rc = pthread_create(&handle, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw .thread("cannot start thread \(name): \(String(cString: strerror(rc)))")
        }
    }

    /// Names the calling thread in /proc/PID/task/TID/comm (15 characters at most), where
    /// `ps -L` and the jail's per-thread checks find it.
    private static func nameCurrentThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = Array(name.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// Pins the calling thread to one host CPU (sched_setaffinity(2)); nil, or why not.
    static func pinCurrentThread(to cpu: Int) -> String? {
        guard let cpu = Int32(exactly: cpu), clinux_pin_current_thread(cpu) == 0 else { return String(cString: strerror(errno)) }
        return nil
    }

    /// Interrupts a blocking KVM_RUN on this thread (see `VCPUKick`).
    func kick() { pthread_kill(handle, VCPUKick.signal) }

    func join() { pthread_join(handle, nil) }

    /// Joins if the thread's body returns within `seconds`; false (and not joined) if not.
    func join(seconds: Double) -> Bool {
        guard done.wait(seconds: seconds) else { return false }
        pthread_join(handle, nil)
        return true
    }
}

/// A one-shot flag: a thread raising it as its last act, or a gate others wait at; waits are
/// timed on CLOCK_MONOTONIC, or not.
final class Completion: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var raised = false

    init() {
        mutex.initialize(to: pthread_mutex_t())
        condition.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func signal() {
        pthread_mutex_lock(mutex)
        raised = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    func wait() {
        pthread_mutex_lock(mutex)
        while !raised { pthread_cond_wait(condition, mutex) }
        pthread_mutex_unlock(mutex)
    }

    func wait(seconds: Double) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let total = Double(deadline.tv_sec) + Double(deadline.tv_nsec) / 1e9 + seconds
        deadline.tv_sec = Int(total)
        deadline.tv_nsec = Int((total - Double(Int(total))) * 1e9)
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !raised {
            if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { return raised }
        }
        return true
    }
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
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

    nonisolated(unsafe) private static var startStorage: UInt64 = 0

    /// Call first thing in main; later calls are ignored.
    public static func markStart() {
        if startStorage == 0 { startStorage = now() }
    }

    public static var start: UInt64 { startStorage }

    public static func microsecondsSinceStart() -> UInt64 { now() &- startStorage }
}
