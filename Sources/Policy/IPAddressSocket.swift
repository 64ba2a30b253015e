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

    /// The address and port in `socketAddress`, a `sockaddr_in` or `sockaddr_in6` as
    /// getaddrinfo(3), getsockname(2) or getpeername(2) give them; nil for another family.
    public static func from(_ socketAddress: UnsafePointer<sockaddr>) -> (address: IPAddress, port: UInt16)? {
        switch Int32(socketAddress.pointee.sa_family) {
        case AF_INET:
            return socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                (.v4(UInt32(bigEndian: $0.pointee.sin_addr.s_addr)), UInt16(bigEndian: $0.pointee.sin_port))
            }
        case AF_INET6:
            return socketAddress.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                let bits = withUnsafeBytes(of: pointer.pointee.sin6_addr) { $0.reduce(UInt128(0)) { $0 << 8 | UInt128($1) } }
                return (.v6(bits), UInt16(bigEndian: pointer.pointee.sin6_port))
            }
        default:
            return nil
        }
    }
}
