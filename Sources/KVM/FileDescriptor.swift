import Glibc

/// An owned file descriptor, closed exactly once when its owner goes away.
/// Non-copyable, so ownership is explicit; the raw value never leaves this module except
/// through `borrow`.
struct OwnedFileDescriptor: ~Copyable {
    let rawValue: Int32

    init(_ rawValue: Int32) { self.rawValue = rawValue }

    deinit { _ = Glibc.close(rawValue) }
}

/// The one funnel for ioctls: retries EINTR, maps failures to `KVMError.ioctl` naming the call.
@discardableResult
func checkedIoctl(_ name: String, _ call: () -> Int32) throws(KVMError) -> Int32 {
    while true {
        let result = call()
        if result >= 0 { return result }
        let e = errno
        if e == EINTR { continue }
        throw KVMError.ioctl(name, Errno(e))
    }
}
