import Glibc

/// A pthread mutex, heap-allocated so that its address never moves.
final class Lock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() {
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }
}

/// Holds every thread at `arriveAndWait()` until `parties` threads have arrived, so that they
/// all start their next step together. A thread that failed earlier still arrives.
final class Gate: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let parties: Int
    private var arrived = 0

    init(parties: Int) {
        self.parties = parties
        mutex.initialize(to: pthread_mutex_t())
        condition.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Counts as arrived without waiting (for a party that will never come).
    func arrive() {
        pthread_mutex_lock(mutex)
        arrived += 1
        if arrived >= parties { pthread_cond_broadcast(condition) }
        pthread_mutex_unlock(mutex)
    }

    func arriveAndWait() {
        pthread_mutex_lock(mutex)
        arrived += 1
        if arrived >= parties {
            pthread_cond_broadcast(condition)
        } else {
            while arrived < parties { pthread_cond_wait(condition, mutex) }
        }
        pthread_mutex_unlock(mutex)
    }
}

private final class ThreadEntry {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// A joinable thread running `body` (512 KiB of stack: the probe's buffers live on the heap).
struct ProbeThread {
    private let thread: pthread_t

    init(_ body: @escaping @Sendable () -> Void) throws(ProbeError) {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 512 << 10)
        let entry = Unmanaged.passRetained(ThreadEntry(body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, &attributes, { raw in
            if let raw { Unmanaged<ThreadEntry>.fromOpaque(raw).takeRetainedValue().body() }
            return nil
        }, entry)
        guard result == 0 else {
            Unmanaged<ThreadEntry>.fromOpaque(entry).release()
            throw .system("pthread_create", errno: result)
        }
        self.thread = thread
    }

    func join() {
        pthread_join(thread, nil)
    }
}
