import Glibc

extension IPAddress {
    public var isV4: Bool {
        if case .v4 = self { return true }
        return false
    }

    /// The socket family for this address: AF_INET or AF_INET6.
    public var family: Int32 { isV4 ? AF_INET : AF_INET6 }

    /// This address and `port` as a `sockaddr_in` or `sockaddr_in6` (ip(7), ipv6(7)), lent to
    /// `body` with its length, for bind(2) or connect(2).
    public func withSocketAddress<R>(port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch self {
        case .v4(let bits):
            var socketAddress = sockaddr_in()
            socketAddress.sin_family = sa_family_t(AF_INET)
            socketAddress.sin_port = port.bigEndian
            socketAddress.sin_addr.s_addr = bits.bigEndian
            return withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(let bits):
            var socketAddress = sockaddr_in6()
            socketAddress.sin6_family = sa_family_t(AF_INET6)
            socketAddress.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &socketAddress.sin6_addr) { raw in
                for index in 0..<16 { raw[index] = UInt8(truncatingIfNeeded: bits >> (8 * (15 - index))) }
            }
            return withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }

    /// The address and port that getsockname(2) or getpeername(2) filled `storage` with; nil
    /// for a family other than IPv4 and IPv6.
    public static func from(_ storage: sockaddr_storage) -> (address: IPAddress, port: UInt16)? {
        var storage = storage
        return withUnsafeBytes(of: &storage) { raw in
            switch Int32(raw.load(as: sa_family_t.self)) {
            case AF_INET:
                let address = raw.load(as: sockaddr_in.self)
                return (.v4(UInt32(bigEndian: address.sin_addr.s_addr)), UInt16(bigEndian: address.sin_port))
            case AF_INET6:
                let address = raw.load(as: sockaddr_in6.self)
                let bits = withUnsafeBytes(of: address.sin6_addr) { $0.reduce(UInt128(0)) { $0 << 8 | UInt128($1) } }
                return (.v6(bits), UInt16(bigEndian: address.sin6_port))
            default:
                return nil
            }
        }
    }
}
