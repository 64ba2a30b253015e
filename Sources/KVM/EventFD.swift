import CKVM
import Glibc

/// A Linux eventfd(2): the doorbell KVM uses for irqfd (device → guest interrupt) and
/// ioeventfd (guest doorbell write → host wakeup).
public final class EventFD: @unchecked Sendable {
    let fd: OwnedFileDescriptor

    public init(nonBlocking: Bool = false) throws(KVMError) {
        // EFD_CLOEXEC and EFD_NONBLOCK are defined as O_CLOEXEC and O_NONBLOCK (eventfd(2)).
        let flags = O_CLOEXEC | (nonBlocking ? O_NONBLOCK : 0)
        let raw = eventfd(0, flags)
        guard raw >= 0 else { throw KVMError.eventfd(.current) }
        fd = OwnedFileDescriptor(raw)
    }

    /// Adds `value` to the counter (wakes a reader, or makes KVM inject the bound interrupt).
    public func signal(_ value: UInt64 = 1) {
        var v = value
        // A full counter (EAGAIN) means the event is already pending: nothing is lost.
        _ = withUnsafeBytes(of: &v) { write(fd.rawValue, $0.baseAddress, 8) }
    }

    /// Reads and resets the counter; returns 0 if non-blocking and nothing was pending.
    public func drain() -> UInt64 {
        var v: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &v) { read(fd.rawValue, $0.baseAddress, 8) }
        return n == 8 ? v : 0
    }

    /// For poll(2)-based event loops.
    public var pollDescriptor: Int32 { fd.rawValue }
}
