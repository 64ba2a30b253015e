import Glibc

/// The one EINTR funnel: runs `body` until it does not fail with EINTR, and returns its result
/// (-1 with errno set on any other failure). close(2) must not go through it: on Linux the
/// descriptor is gone even when close reports EINTR.
@inlinable
public func retryingEINTR<T: FixedWidthInteger>(_ body: () -> T) -> T {
    while true {
        let result = body()
        if result == -1 && errno == EINTR { continue }
        return result
    }
}
