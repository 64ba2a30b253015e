/// What kind of destination an address is. Only `.public` addresses are reachable through a
/// rule that does not name them; the rest are special (docs/policy.md, "Addresses").
public enum AddressClass: String, Sendable, Hashable, CustomStringConvertible {
    case `public`
    case unspecified
    case loopback
    /// 169.254.0.0/16 (where clouds serve instance metadata, 169.254.169.254) and fe80::/10.
    case linkLocal
    case `private`
    case multicast
    case broadcast
    case documentation
    /// Set aside by IANA: not a destination on the internet.
    case reserved

    /// "a private address", for reasons.
    public var description: String {
        switch self {
        case .public: "a public address"
        case .unspecified: "an unspecified address"
        case .loopback: "a loopback address"
        case .linkLocal: "a link-local address"
        case .private: "a private address"
        case .multicast: "a multicast address"
        case .broadcast: "the broadcast address"
        case .documentation: "a documentation address"
        case .reserved: "a reserved address"
        }
    }
}

extension IPAddress {
    /// The special blocks, most specific first (RFC 6890's registries; the IPv4 ones also
    /// apply to mapped and NAT64 addresses through `effective`).
    static let specialBlocks: [(IPNetwork, AddressClass)] = {
        let table: [(String, AddressClass)] = [
            ("255.255.255.255/32", .broadcast),
            ("0.0.0.0/8", .unspecified),  // "this network", RFC 1122 §3.2.1.3
            ("10.0.0.0/8", .private),  // RFC 1918
            ("100.64.0.0/10", .private),  // shared address space (carrier-grade NAT), RFC 6598
            ("127.0.0.0/8", .loopback),
            ("169.254.0.0/16", .linkLocal),  // RFC 3927; cloud metadata at 169.254.169.254
            ("172.16.0.0/12", .private),
            ("192.0.0.0/24", .reserved),  // IETF protocol assignments, RFC 6890
            ("192.0.2.0/24", .documentation),  // RFC 5737
            ("192.168.0.0/16", .private),
            ("198.18.0.0/15", .reserved),  // benchmarking, RFC 2544
            ("198.51.100.0/24", .documentation),
            ("203.0.113.0/24", .documentation),
            ("224.0.0.0/4", .multicast),
            ("240.0.0.0/4", .reserved),  // RFC 1112 §4
            ("::/128", .unspecified),
            ("::1/128", .loopback),
            ("::/96", .reserved),  // IPv4-compatible, deprecated: RFC 4291 §2.5.5.1
            ("100::/64", .reserved),  // discard-only, RFC 6666
            ("2001:db8::/32", .documentation),  // RFC 3849
            ("fc00::/7", .private),  // unique local, RFC 4193
            ("fe80::/10", .linkLocal),
            ("fec0::/10", .private),  // site-local, deprecated: RFC 3879
            ("ff00::/8", .multicast),
        ]
        return table.map { text, kind in
            guard case .success(let network) = IPNetwork.parse(text) else { preconditionFailure("bad table entry \(text)") }
            return (network, kind)
        }
    }()

    /// The most specific special block holding the effective address; nil for a public one.
    var specialBlock: (IPNetwork, AddressClass)? {
        let address = effective
        return Self.specialBlocks.filter { $0.0.contains(address) }.max { $0.0.prefixLength < $1.0.prefixLength }
    }

    /// The class of the effective address: ::ffff:127.0.0.1 is a loopback address.
    public var addressClass: AddressClass { specialBlock?.1 ?? .public }
}

extension IPNetwork {
    /// Whether this block may reach `address` (an effective one): it holds it, and when the
    /// address is special, the block lies within the special block that holds it, so that it
    /// names that kind of place on purpose. 0.0.0.0/0 reaches every public address and no
    /// special one; 10.0.0.0/16 reaches 10.0.1.2.
    public func reaches(_ address: IPAddress) -> Bool {
        let address = address.effective
        guard contains(address) else { return false }
        guard let (block, _) = address.specialBlock else { return true }
        return isWithin(block)
    }

    /// The most specific special block this whole block lies in; nil when there is none (the
    /// block then reaches only the public addresses in it).
    var specialBlock: IPNetwork? {
        IPAddress.specialBlocks.filter { isWithin($0.0) }.max { $0.0.prefixLength < $1.0.prefixLength }?.0
    }

    /// Blocks whose addresses are judged as IPv4 ones (mapped, NAT64): a rule names the IPv4
    /// address or block instead.
    var embedsIPv4: Bool {
        guard case .v6 = address, prefixLength >= 96 else { return false }
        return address.effective != address
    }
}
