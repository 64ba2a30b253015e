import CGuestSys
import Glibc
import POSIX

/// The accept loop every momin-init listener runs (Doors, hands, egress): each connection is
/// handed to `start` (which serves it on a thread of its own or refuses it); transient failures
/// (EMFILE, ENOMEM, an aborted connection) are logged as `name: accept: ...` and retried.
enum AcceptLoop {
    static func run(listener: Int32, name: String, log: @Sendable (String) -> Void, start: (Int32) -> Void) -> Never {
        while true {
            let fd = guest_accept_cloexec(listener)
            if fd >= 0 {
                start(fd)
                continue
            }
            let error = errno
            switch error {
            case EINTR, ECONNABORTED, EAGAIN:
                continue
            default:
                log("\(name): accept: \(SystemError("accept", errno: error))")
                usleep(100_000)
            }
        }
    }

    /// `body` (an accept loop) on a thread of its own named `thread`.
    static func detach(thread: String, _ body: @escaping @Sendable () -> Void) throws(SetupError) {
        do throws(SystemError) {
            try POSIXThread.detach(name: thread, stackSize: 256 << 10, body)
        } catch {
            throw SetupError(error)
        }
    }
}
