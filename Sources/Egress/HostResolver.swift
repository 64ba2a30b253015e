import Glibc
import Policy

/// The host's own name resolution for egress (docs/egress.md): the guest never resolves a name,
/// and the host connects only to addresses it resolved and the policy judged.
public protocol HostResolver: Sendable {
    /// The addresses of `name` (a normalised host name, not an address literal), at most
    /// `AgentPolicy.maximumResolvedAddresses`, without duplicates; or why there are none.
    func addresses(of name: String) -> Result<[IPAddress], ResolveFailure>
}

public struct ResolveFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// getaddrinfo(3) with the host's own configuration (/etc/hosts, /etc/resolv.conf): TCP
/// addresses of either family, in the order the resolver prefers (RFC 6724).
public struct SystemResolver: HostResolver {
    public init() {}

    public func addresses(of name: String) -> Result<[IPAddress], ResolveFailure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(name, nil, &hints, &list)
        guard status == 0 else { return .failure(ResolveFailure(String(cString: gai_strerror(status)))) }
        defer { freeaddrinfo(list) }
        var found: [IPAddress] = []
        var entry = list
        while let current = entry, found.count < AgentPolicy.maximumResolvedAddresses {
            if let address = current.pointee.ai_addr.flatMap({ IPAddress.from($0)?.address }), !found.contains(address) { found.append(address) }
            entry = current.pointee.ai_next
        }
        return found.isEmpty ? .failure(ResolveFailure("no IPv4 or IPv6 address")) : .success(found)
    }
}
