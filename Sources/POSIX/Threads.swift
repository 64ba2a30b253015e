import Glibc

/// POSIX threads running Swift closures: for work that blocks in the kernel (KVM_RUN, accept,
/// a socket read) and must not sit on a Swift concurrency pool.
public final class POSIXThread: @unchecked Sendable {
    private var handle = pthread_t()
    private let finished = Completion()
    private var joined = false

    private final class Entry {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Starts a joinable thread named `name` (15 characters at most are kept).
    public init(name: String, stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        let finished = self.finished
        handle = try Self.create(name: name, stackSize: stackSize, detached: false) {
            body()
            finished.signal()
        }
    }

    /// Starts a detached thread named `name`, which nobody joins.
    public static func detach(name: String, stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        _ = try create(name: name, stackSize: stackSize, detached: true, body)
    }

    private static func create(name: String, stackSize: Int?, detached: Bool,
                               _ body: @escaping () -> Void) throws(SystemError) -> pthread_t {
        var attributes = pthread_attr_t()
        var result = pthread_attr_init(&attributes)
        guard result == 0 else { throw SystemError("pthread_attr_init", errno: result) }
        defer { pthread_attr_destroy(&attributes) }
        if let stackSize {
            result = pthread_attr_setstacksize(&attributes, stackSize)
            guard result == 0 else { throw SystemError("pthread_attr_setstacksize", errno: result) }
        }
        if detached {
            result = pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
            guard result == 0 else { throw SystemError("pthread_attr_setdetachstate", errno: result) }
        }
        let label = String(name.prefix(15))
        let entry = Unmanaged.passRetained(Entry({
            POSIXThread.nameCurrentThread(label)
            body()
        })).toOpaque()
        var thread = pthread_t()
        result = pthread_create(&thread, &attributes, { raw in
            Unmanaged<Entry>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, entry)
        guard result == 0 else {
            Unmanaged<Entry>.fromOpaque(entry).release()
            throw SystemError("pthread_create", errno: result, subject: name)
        }
        return thread
    }

    /// Names the calling thread in /proc/PID/task/TID/comm (15 characters at most), where
    /// `ps -L` and per-thread checks find it.
    public static func nameCurrentThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = Array(name.utf8.prefix(15)).withUnsafeBytes { bytes in retryingEINTR { write(fd, bytes.baseAddress, bytes.count) } }
        close(fd)
    }

    /// Sends `signal` to this thread (pthread_kill(3)).
    public func signal(_ signal: Int32) { pthread_kill(handle, signal) }

    /// Waits for the thread to end.
    public func join() {
        guard !joined else { return }
        pthread_join(handle, nil)
        joined = true
    }

    /// Joins if the thread's body returns within `seconds`; false (and not joined) if not.
    public func join(seconds: Double) -> Bool {
        guard finished.wait(seconds: seconds) else { return false }
        join()
        return true
    }
}
