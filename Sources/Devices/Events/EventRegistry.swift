/// What a file descriptor is ready for.
public struct Readiness: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let readable = Readiness(rawValue: 1 << 0)
    public static let writable = Readiness(rawValue: 1 << 1)
    /// The peer hung up or the descriptor is in error.
    public static let closed = Readiness(rawValue: 1 << 2)
}

/// The device thread's event loop, as devices see it: a device with host-side file descriptors
/// (vsock's Unix sockets) asks to be called on that thread when one becomes ready. Handlers run
/// one at a time on the loop's thread, never concurrently with each other, so a device needs no
/// lock between its own handlers (it still needs one against vCPU-thread register accesses).
/// The VMM implements it with epoll; tests may implement it with a plain poll loop.
public protocol EventRegistry: AnyObject, Sendable {
    /// Starts watching `fd` for `interest`; `handler` gets what it is ready for. A descriptor may
    /// be watched once at a time.
    func watch(_ fd: Int32, for interest: Readiness, handler: @escaping @Sendable (Readiness) -> Void) throws
    /// Changes what `fd` is watched for (e.g. add `.writable` while output is queued).
    func change(_ fd: Int32, to interest: Readiness) throws
    /// Stops watching `fd`. Call before closing it.
    func unwatch(_ fd: Int32)
    /// Runs `work` on the loop's thread soon (e.g. a queue notification handed over from elsewhere).
    func schedule(_ work: @escaping @Sendable () -> Void)
    /// Runs `work` on the loop's thread once `seconds` have passed (a protocol timer). There is
    /// no cancelling: `work` checks whether what it was for still stands.
    func schedule(after seconds: Double, _ work: @escaping @Sendable () -> Void)
}
