import Glibc
import Host
import Policy
import POSIX

/// Where `momin serve --tcp` listens: an address and a port. Loopback unless the owner names
/// another address (docs/api.md, "TCP").
public struct TCPEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// `PORT` (on 127.0.0.1), `A.B.C.D:PORT` or `[IPV6]:PORT`; port 0 asks the kernel for one.
    public static func parse(_ text: String) -> Result<TCPEndpoint, HostError> {
        let host: Substring
        let portText: Substring
        if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            host = "127.0.0.1"
            portText = text[...]
        }
        guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
              let port = UInt16(portText) else {
            return .failure(.badInput("\(text): the port must be a number from 0 to 65535 (PORT, A.B.C.D:PORT or [IPV6]:PORT)"))
        }
        var bare = host
        if bare.hasPrefix("[") && bare.hasSuffix("]") {
            bare = bare.dropFirst().dropLast()
        } else if bare.contains(":") {
            return .failure(.badInput("\(text): write an IPv6 address in brackets, [::1]:PORT"))
        }
        switch IPAddress.parse(String(bare)) {
        case .success(let address): return .success(TCPEndpoint(address: address, port: port))
        case .failure(let problem): return .failure(.badInput("\(text): \(bare) \(problem)"))
        }
    }

    /// 127.0.0.0/8 or ::1 (RFC 1122 §3.2.1.3, RFC 4291 §2.5.3).
    public var isLoopback: Bool {
        switch address {
        case .v4(let bits): bits >> 24 == 127
        case .v6(let bits): bits == 1
        }
    }

    public var description: String {
        if case .v6 = address { return "[\(address)]:\(port)" }
        return "\(address):\(port)"
    }

    /// A listening socket on this endpoint, and the endpoint it is bound to (the kernel's port
    /// where 0 was asked for).
    public func listen() throws(HostError) -> (fd: Int32, bound: TCPEndpoint) {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .failed("--tcp \(self): socket: \(describeErrno())") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = address.withSocketAddress(port: port) { bind(fd, $0, $1) }
        guard bound == 0, Glibc.listen(fd, 64) == 0 else {
            let why = describeErrno()
            close(fd)
            throw .badInput("--tcp \(self): cannot listen there: \(why)")
        }
        guard let local = Self.name(of: fd, peer: false) else {
            close(fd)
            throw .failed("--tcp \(self): getsockname: \(describeErrno())")
        }
        return (fd, local)
    }

    /// `a.b.c.d:port` of the other end of `fd`, or "an unknown peer".
    static func peer(of fd: Int32) -> String {
        name(of: fd, peer: true)?.description ?? "an unknown peer"
    }

    static func name(of fd: Int32, peer: Bool) -> TCPEndpoint? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let found = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> (address: IPAddress, port: UInt16)? in
                guard (peer ? getpeername(fd, pointer, &length) : getsockname(fd, pointer, &length)) == 0 else { return nil }
                return IPAddress.from(pointer)
            }
        }
        return found.map { TCPEndpoint(address: $0.address, port: $0.port) }
    }
}
