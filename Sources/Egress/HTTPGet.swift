import Glibc
import HTTPWire
import PackageIndex
import Policy
import POSIX
import TLS

/// One HTTP/1.1 GET made by the host for itself (a package index, a wheel): plain or TLS, one
/// request per connection, redirects followed only where `mayFollow` says, the body streamed to
/// `body` and cut at `limit` bytes. The caller decides which URLs may be asked at all.
struct HTTPGet {
    var resolver: any HostResolver
    var trust: TLSTrust
    var connectTimeout: Double
    /// How long the server may go without sending a byte.
    var idleTimeout: Double
    var maximumRedirects = 5

    /// An absolute http(s) URL split for a request: what to connect to and the request target.
    struct Target: CustomStringConvertible {
        var origin: BaseURL
        /// Path and query as written, starting with "/".
        var pathAndQuery: String

        var description: String { "\(origin.scheme.rawValue)://\(origin.authority)\(pathAndQuery)" }

        /// Splits `text` (RFC 3986 §3); the host and port are read as `BaseURL` reads them, the
        /// path is kept as written (printable ASCII only; no fragment).
        static func parse(_ text: String) -> Result<Target, BrainFailure> {
            let reference = URLReference(text)
            guard let scheme = reference.scheme, let authority = reference.authority, reference.fragment == nil else {
                return .failure(BrainFailure("is not an absolute URL without a fragment"))
            }
            guard reference.path.isEmpty || reference.path.hasPrefix("/"),
                  (reference.path + (reference.query ?? "")).utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                return .failure(BrainFailure("has a path with spaces, control or non-ASCII characters"))
            }
            switch BaseURL.parse("\(scheme.lowercased())://\(authority)") {
            case .failure(let problem): return .failure(BrainFailure(problem.description))
            case .success(let origin):
                let path = reference.path.isEmpty ? "/" : reference.path
                return .success(Target(origin: origin, pathAndQuery: path + (reference.query.map { "?" + $0 } ?? "")))
            }
        }
    }

    struct Response {
        var status: Int
        /// Where the body came from, after redirects (the base of a page's relative links).
        var url: Target
        var contentType: String?
        var received: UInt64
    }

    /// GETs `url`, following up to `maximumRedirects` redirects that `mayFollow` accepts, and
    /// passes the final response's body to `body` as it arrives (nothing for a status other
    /// than 200). More than `limit` body bytes is a failure.
    func fetch(_ url: Target, accept: String, limit: UInt64, mayFollow: (Target) -> Bool,
               body: ([UInt8]) throws(BrainFailure) -> Void) throws(BrainFailure) -> Response {
        var current = url
        for _ in 0...maximumRedirects {
            let stream = try connect(current.origin)
            defer { stream.close() }
            var request = "GET \(current.pathAndQuery) HTTP/1.1\r\nHost: \(current.origin.authority)\r\nAccept: \(accept)\r\n"
            // identity: the digests are over the bytes as served (RFC 9110 §12.5.3).
            request += "Accept-Encoding: identity\r\nUser-Agent: momin-packages\r\nConnection: close\r\n\r\n"
            try stream.send(Array(request.utf8), deadline: MonotonicClock.deadline(after: idleTimeout))
            let (head, leftover) = try BrainRelay.Call.readHead(stream, idle: idleTimeout, requestMethod: "GET", peer: "the server").get()
            if [301, 302, 303, 307, 308].contains(head.status) {
                guard let location = head.value(of: "Location") else { throw BrainFailure("\(current): a \(head.status) redirect without Location") }
                let resolved = URLReference(location).resolved(against: URLReference(current.description))
                guard case .success(let next) = Target.parse(resolved.description), mayFollow(next) else {
                    throw BrainFailure("\(current) redirects to \(EgressRelay.headerSafe(location)), which is not followed")
                }
                current = next
                continue
            }
            var response = Response(status: head.status, url: current, contentType: head.value(of: "Content-Type"), received: 0)
            guard head.status == 200 else { return response }
            if let coding = head.value(of: "Content-Encoding"), !HeaderField.equalIgnoringASCIICase(coding, "identity") {
                throw BrainFailure("\(current): the body is \(EgressRelay.headerSafe(coding))-coded though identity was asked for")
            }
            if case .length(let length) = head.framing, length > limit {
                throw BrainFailure("\(current): \(length) bytes is over the \(limit)-byte limit")
            }
            var reader = BrainRelay.BodyReader(framing: head.framing, pending: leftover)
            while let piece = try reader.next(stream, deadline: MonotonicClock.deadline(after: idleTimeout)) {
                response.received += UInt64(piece.count)
                guard response.received <= limit else { throw BrainFailure("\(current): the body is over the \(limit)-byte limit") }
                try body(piece)
            }
            return response
        }
        throw BrainFailure("\(url): more than \(maximumRedirects) redirects")
    }

    private func connect(_ origin: BaseURL) throws(BrainFailure) -> any ProviderStream {
        switch ProviderConnection.open(origin, resolver: resolver, trust: trust, timeout: connectTimeout) {
        case .success(let stream): return stream
        case .failure(let failure): throw BrainFailure("\(origin.authority): \(failure)")
        }
    }
}
