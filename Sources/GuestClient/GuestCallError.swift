import Doors
import POSIX

/// Why a call into the guest over Doors failed, as the one line a user sees.
public enum GuestCallError: Error, CustomStringConvertible {
    case socket(String, errno: Int32)
    /// Nothing in the guest accepted a connection on the Doors port before the deadline.
    case guestNotListening(port: UInt32, seconds: Double)
    /// The VM stopped before its guest accepted a connection on the Doors port (its console
    /// says why).
    case vmEndedBeforeListening(port: UInt32)
    /// The VMM's vsock socket answered the CONNECT handshake with something other than OK.
    case handshake(String)
    case protocolError(DoorsError)
    /// The guest answered the request with an Error frame.
    case remote(ErrorReply)
    case connectionClosed
    case unexpected(DoorsMessage)
    /// The VMM or the guest did not answer a handshake in time.
    case timedOut(String)
    /// The guest's answer went past a bound the host keeps (what, and the bound).
    case exceeded(String)

    public var description: String {
        switch self {
        case .socket(let call, let e): "\(call): \(describeErrno(e))"
        case .guestNotListening(let port, let s): "the guest did not accept Doors connections on vsock port \(port) within \(s) s"
        case .vmEndedBeforeListening(let port): "the VM stopped before its guest accepted Doors connections on vsock port \(port)"
        case .handshake(let line): "vsock CONNECT refused: \(line)"
        case .protocolError(let e): "Doors protocol error: \(e)"
        case .remote(let reply):
            reply.message.isEmpty ? "guest error: \(reply.code)" : "guest error: \(reply.message)"
        case .connectionClosed: "the guest closed the Doors connection"
        case .unexpected(let m): "unexpected Doors message \(m.type)"
        case .timedOut(let what): "timed out waiting for \(what)"
        case .exceeded(let what): "the guest's answer went past a bound: \(what)"
        }
    }
}
