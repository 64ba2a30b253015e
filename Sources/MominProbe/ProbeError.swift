import Doors
import Glibc
import GuestClient

/// Why a probe step failed, as the line a person reads.
enum ProbeError: Error, CustomStringConvertible {
    case usage(String)
    case system(String, errno: Int32)
    /// The VMM's socket answered the CONNECT line with something other than `OK <port>`.
    case connectRefused(port: UInt32, answer: String)
    /// Nothing accepted a connection on the guest port before the deadline.
    case notListening(port: UInt32, seconds: Double)
    case timedOut(String)
    case closed(String)
    case doors(DoorsError)
    case guest(GuestCallError)
    case remote(ErrorReply)
    case unexpected(String)

    var description: String {
        switch self {
        case .usage(let text): text
        case .system(let call, let e): "\(call): \(String(cString: strerror(e))) (errno \(e))"
        case .connectRefused(let port, let answer): "CONNECT \(port) answered '\(answer)'"
        case .notListening(let port, let seconds): "nothing listened on guest vsock port \(port) within \(seconds) s"
        case .timedOut(let what): "timed out waiting for \(what)"
        case .closed(let what): "the connection closed \(what)"
        case .doors(let error): "Doors: \(error)"
        case .guest(let error): "Hands: \(error)"
        case .remote(let reply): "guest error \(reply.code)\(reply.message.isEmpty ? "" : ": \(reply.message)")"
        case .unexpected(let what): what
        }
    }
}
