import Egress
import Glibc
import POSIX

/// Serves one of a VM's two egress entries (`EgressProtocol`: the proxy, the Brain): momin-init
/// relays each TCP connection made in the guest to the VMM's `PATH_PORT` socket, where this
/// listens, and each is served by `relay` on a thread of its own, at most
/// `relay.configuration.maxConnections` at once (one more is answered 503 and closed).
public final class EgressListener: @unchecked Sendable {
    public let path: String
    private let fd: Int32
    private let relay: EgressRelay
    private let entry: EgressEntry
    private let active = Monitor()
    private var connections = 0
    private var stopped = false

    /// Listens at `place` (made as the hands socket is: staged, then renamed into place).
    public init(place: HandsSocketPlace, entry: EgressEntry, relay: EgressRelay) throws(AgentError) {
        self.path = place.path
        self.relay = relay
        self.entry = entry
        fd = try StagedSocket.listen(place)
        do { try POSIXThread.detach(name: "egress-accept") { [self] in acceptLoop() } } catch {
            close(fd)
            throw .io("cannot start the egress listener: \(error)")
        }
    }

    /// Stops accepting and removes the socket file; connections already open run to their end.
    public func stop() {
        let first = active.holding { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        shutdown(fd, Int32(SHUT_RDWR))
        unlink(path)
    }

    private func acceptLoop() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                break
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            let limit = relay.configuration.maxConnections
            let admitted = active.holding { () -> Bool in
                guard connections < limit else { return false }
                connections += 1
                return true
            }
            guard admitted else {
                let refusal = Array("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
                _ = refusal.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
                close(client)
                continue
            }
            do {
                try POSIXThread.detach(name: "egress-conn") { [self] in
                    relay.serve(client, entry: entry)
                    active.holding { connections -= 1 }
                }
            } catch {
                active.holding { connections -= 1 }
                close(client)
            }
        }
        close(fd)
    }
}
