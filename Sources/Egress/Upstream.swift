import Glibc
import Policy
import POSIX

/// A TCP connection to a judged address, made by the host for an agent.
public enum Upstream {
    /// Connects to the first of `addresses` that answers on `port`, each tried for at most
    /// `timeout` seconds (a non-blocking connect(2) waited on with poll(2)); the socket is
    /// blocking again when returned. On failure, what each address said.
    public static func connect(to addresses: [IPAddress], port: UInt16, timeout: Double) -> Result<(fd: Int32, address: IPAddress), ResolveFailure> {
        var problems: [String] = []
        for address in addresses {
            switch connect(address, port: port, timeout: timeout) {
            case .success(let fd): return .success((fd, address))
            case .failure(let problem): problems.append("\(endpoint(address, port)): \(problem)")
            }
        }
        return .failure(ResolveFailure(problems.isEmpty ? "no address to connect to" : problems.joined(separator: "; ")))
    }

    /// `a.b.c.d:port` or `[v6]:port`.
    public static func endpoint(_ address: IPAddress, _ port: UInt16) -> String {
        if case .v6 = address { return "[\(address)]:\(port)" }
        return "\(address):\(port)"
    }

    static func connect(_ address: IPAddress, port: UInt16, timeout: Double) -> Result<Int32, ResolveFailure> {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .failure(ResolveFailure("socket: \(String(cString: strerror(errno)))")) }
        let started = address.withSocketAddress(port: port) { Glibc.connect(fd, $0, $1) }
        if started != 0 {
            guard errno == EINPROGRESS else {
                let problem = String(cString: strerror(errno))
                close(fd)
                return .failure(ResolveFailure(problem))
            }
            var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let deadline = MonotonicClock.deadline(after: timeout)
            while true {
                let ready = poll(&entry, 1, MonotonicClock.pollTimeout(until: deadline))
                if ready < 0 && errno == EINTR { continue }
                if ready <= 0 {
                    close(fd)
                    return .failure(ResolveFailure(ready == 0 ? "no answer in \(Int(timeout)) s" : String(cString: strerror(errno))))
                }
                break
            }
            var failure: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            if getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) != 0 { failure = errno }
            guard failure == 0 else {
                close(fd)
                return .failure(ResolveFailure(String(cString: strerror(failure))))
            }
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~Int32(O_NONBLOCK))
        return .success(fd)
    }
}
