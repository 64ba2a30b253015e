import POSIX

/// The step of a connection an error happened in.
public enum TLSStep: String, Sendable {
    case handshake
    case read
    case write
}

/// Why a TLS connection could not be made or used; each case reads as a message.
public enum TLSError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A context or connection could not be made: the CA bundle did not load, a bad server name.
    case setup(String)
    /// The peer's certificate chain or its name did not verify during the handshake.
    /// `reason` is X509_verify_cert_error_string(3) of SSL_get_verify_result(3).
    case certificateVerifyFailed(reason: String, serverName: String)
    /// The step was not done by its deadline.
    case timedOut(TLSStep)
    /// The peer ended the TCP connection where TLS still needed it (in the handshake, or while
    /// a write was unsent).
    case closedByPeer(TLSStep)
    /// A system call on the socket failed (ECONNRESET, EPIPE), or poll(2) did.
    case system(TLSStep, SystemError)
    /// TLS itself failed: OpenSSL's ERR_error_string_n(3) ("error:0A00010B:SSL routines::wrong
    /// version number").
    case protocolFailure(TLSStep, String)
    /// An earlier call failed; OpenSSL allows no more calls on the connection (SSL_get_error(3)).
    case unusable

    public var description: String {
        switch self {
        case .setup(let what): "TLS setup: \(what)"
        case .certificateVerifyFailed(let reason, let serverName): "certificate verify failed: \(reason) (\(serverName))"
        case .timedOut(let step): "TLS \(step.rawValue): timed out"
        case .closedByPeer(let step): "TLS \(step.rawValue): the peer closed the connection"
        case .system(let step, let error): "TLS \(step.rawValue): \(error)"
        case .protocolFailure(let step, let message): "TLS \(step.rawValue): \(message.isEmpty ? "failed" : message)"
        case .unusable: "TLS connection unusable after an earlier failure"
        }
    }
}
