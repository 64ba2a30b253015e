import CTLS
import POSIX

/// Which certificate authorities a client trusts.
public enum TLSTrust: Hashable, Sendable {
    /// The system's store (Debian: ca-certificates in /etc/ssl/certs), through
    /// SSL_CTX_set_default_verify_paths(3); SSL_CERT_FILE and SSL_CERT_DIR override it.
    case system
    /// Only the CAs in this PEM file (tests, private providers).
    case caBundle(path: String)
}

/// One OpenSSL client context (SSL_CTX): a trust setting, TLS 1.2 at least, peer verification,
/// ALPN "http/1.1". Connections take a reference to it, so it may go before they do.
///
/// Shared rather than one per connection: the system store (about 140 roots) is parsed once,
/// not at every model call, and OpenSSL 3 lets many threads make connections from one context
/// that is no longer changed (openssl-threads(7)). A CA file changed on disk is read again only
/// by a new `TLSContext(trust:)`: `shared(for:)` keeps the first one for each trust setting.
public final class TLSContext: @unchecked Sendable {
    let pointer: OpaquePointer
    public let trust: TLSTrust

    public init(trust: TLSTrust) throws(TLSError) {
        var failure = ctls_failure()
        let made: OpaquePointer?
        switch trust {
        case .system: made = ctls_context_new(nil, &failure)
        case .caBundle(let path): made = ctls_context_new(path, &failure)
        }
        guard let made else {
            let what = switch trust {
            case .system: "the system trust store"
            case .caBundle(let path): "CA bundle \(path)"
            }
            throw .setup("\(what): \(failure.text)")
        }
        pointer = made
        self.trust = trust
    }

    deinit { ctls_context_free(pointer) }

    private static let lock = Lock()
    nonisolated(unsafe) private static var contexts: [TLSTrust: TLSContext] = [:]

    /// The process's context for `trust`, made on first use; a failure is not kept, so a
    /// CA file that appears later is read then.
    public static func shared(for trust: TLSTrust) throws(TLSError) -> TLSContext {
        try lock.withLock { () throws(TLSError) -> TLSContext in
            if let context = contexts[trust] { return context }
            let context = try TLSContext(trust: trust)
            contexts[trust] = context
            return context
        }
    }
}

extension ctls_failure {
    /// `message` as a String.
    var text: String {
        withUnsafeBytes(of: message) { raw in String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }
}
