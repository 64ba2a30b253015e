import Egress
import Glibc
import POSIX

/// Serves one of a VM's two egress entries (`EgressProtocol`: the proxy, the Brain): momin-init
/// relays each TCP connection made in the guest to the VMM's `PATH_PORT` socket, where this
/// listens, and each is served by `relay` on a thread of its own, at most
/// `relay.configuration.maxConnections` at once (one more is answered 503 and closed).
public final class EgressListener: Sendable {
    public let path: String
    private let server: SocketServer

    /// Listens at `place` (made as the hands socket is: staged, then renamed into place).
    public init(place: HandsSocketPlace, entry: EgressEntry, relay: EgressRelay) throws(AgentError) {
        path = place.path
        server = SocketServer(fd: try StagedSocket.listen(place), path: place.path, limit: relay.configuration.maxConnections)
        try server.start(name: "egress") { client in relay.serve(client, entry: entry) } refuse: { client in
            let refusal = Array("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
            _ = refusal.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
        }
    }

    /// Stops accepting and removes the socket file; connections already open run to their end.
    public func stop() { server.stop() }
}
