import Glibc
import Synchronization

/// Trap mode's SIGSYS handler: writes "PREFIX<class> made forbidden syscall <nr>" to stderr
/// with write(2) alone and exits 159 (128 + SIGSYS, what a shell shows for kill mode too).
/// Each thread says its class with `register` before installing its filter; the handler finds
/// it by pthread_self(). Nothing in the handler allocates or locks.
public enum SeccompTrap {
    /// The exit status after a trapped syscall.
    public static let exitStatus: Int32 = 159
    static let capacity = 1024

    nonisolated(unsafe) private static var prefix: StaticString = "seccomp: thread "
    nonisolated(unsafe) private static var threads = UnsafeMutablePointer<UInt>.allocate(capacity: capacity)
    nonisolated(unsafe) private static var classes = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
    private static let registered = Atomic<Int>(0)

    /// Installs the handler for the whole process; call once, before the threads start.
    public static func installHandler(prefix: StaticString) {
        self.prefix = prefix
        _ = threads
        _ = classes
        _ = registered.load(ordering: .relaxed)
        var action = sigaction()
        action.__sigaction_handler.sa_sigaction = { _, info, _ in SeccompTrap.report(info) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_SIGINFO
        sigaction(SIGSYS, &action, nil)
    }

    /// Records the calling thread's class for the handler (beyond `capacity` threads, later
    /// ones are reported as "unknown").
    public static func register(_ threadClass: SeccompThreadClass) {
        let slot = registered.wrappingAdd(1, ordering: .relaxed).oldValue
        guard slot < capacity else { return }
        threads[slot] = UInt(pthread_self())
        classes[slot] = code(threadClass)
    }

    private static func code(_ c: SeccompThreadClass) -> UInt8 {
        switch c {
        case .main: 1
        case .devices: 2
        case .vcpu: 3
        }
    }

    private static func name(_ code: UInt8) -> StaticString {
        switch code {
        case 1: "main"
        case 2: "devices"
        case 3: "vcpu"
        default: "unknown"
        }
    }

    private static func report(_ info: UnsafeMutablePointer<siginfo_t>?) {
        let number = info.map { Int($0.pointee._sifields._sigsys._syscall) } ?? -1
        let me = UInt(pthread_self())
        var found: UInt8 = 0
        for slot in 0..<min(registered.load(ordering: .relaxed), capacity) where threads[slot] == me { found = classes[slot] }
        put(prefix)
        put(name(found))
        put(" made forbidden syscall ")
        // The number in decimal, in a buffer on the stack.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var n = number < 0 ? -number : number
            var at = buffer.count
            repeat {
                at -= 1
                buffer[at] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
            } while n > 0 && at > 1
            if number < 0 { at -= 1; buffer[at] = UInt8(ascii: "-") }
            _ = write(2, buffer.baseAddress! + at, buffer.count - at)
        }
        put("\n")
        _exit(exitStatus)
    }

    private static func put(_ text: StaticString) {
        _ = write(2, text.utf8Start, text.utf8CodeUnitCount)
    }
}
