/// An IPv4 or IPv6 address, parsed from text strictly: only the forms every resolver reads the
/// same way (docs/policy.md, "Addresses").
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt128)

    /// The longest address text read (an IPv6 address with an embedded dotted quad is 45).
    static let maximumTextLength = 64

    /// The address as this policy judges it: an IPv4-mapped IPv6 address (::ffff:a.b.c.d,
    /// RFC 4291 §2.5.5.2) and a NAT64 one (64:ff9b::a.b.c.d, RFC 6052 §2.1) reach the IPv4
    /// address inside, so they are that address; anything else is itself.
    public var effective: IPAddress {
        guard case .v6(let bits) = self else { return self }
        if bits >> 32 == 0xFFFF || bits >> 32 == UInt128(0x64_ff9b) << 64 { return .v4(UInt32(truncatingIfNeeded: bits)) }
        return self
    }

    var bitWidth: Int {
        if case .v4 = self { 32 } else { 128 }
    }

    /// The address as a left-aligned 128-bit value, for prefix arithmetic on either family.
    var leftAligned: UInt128 {
        switch self {
        case .v4(let bits): UInt128(bits) << 96
        case .v6(let bits): bits
        }
    }

    // MARK: Parsing

    /// Why a text is not an address this policy accepts; reads after `"x" `.
    public enum Problem: Error, Sendable, Hashable, CustomStringConvertible {
        case notAnAddress
        /// "0177.0.0.1", "0x7f.1", "127.1", "2130706433": inet_aton(3) reads these as IPv4
        /// addresses, other parsers as names or not at all.
        case ambiguousIPv4
        case zone
        case tooLong

        public var description: String {
            switch self {
            case .notAnAddress: "is not an IPv4 or IPv6 address"
            case .ambiguousIPv4:
                "is a numeric form (leading zeros, hex, fewer than four parts or one number) that resolvers read as an IPv4 address in different ways; write four decimal numbers such as 127.0.0.1"
            case .zone: "has a zone index (\"%...\"), which names an interface, not a destination"
            case .tooLong: "is longer than \(IPAddress.maximumTextLength) bytes"
            }
        }
    }

    /// A dotted quad of four decimal numbers 0–255 without leading zeros, or an IPv6 address
    /// in RFC 4291 §2.2 text (hex groups, one "::", a dotted quad last), no zone, no brackets.
    public static func parse(_ text: String) -> Result<IPAddress, Problem> {
        let bytes = Array(text.utf8)
        if bytes.count > maximumTextLength { return .failure(.tooLong) }
        if bytes.contains(UInt8(ascii: ":")) {
            if bytes.contains(UInt8(ascii: "%")) { return .failure(.zone) }
            return parseV6(bytes[...]).map { .success(.v6($0)) } ?? .failure(.notAnAddress)
        }
        if let v4 = parseV4(bytes[...]) { return .success(.v4(v4)) }
        return looksLikeInetAton(bytes[...]) ? .failure(.ambiguousIPv4) : .failure(.notAnAddress)
    }

    static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Exactly four parts of 1–3 decimal digits, each 0–255, no leading zero.
    static func parseV4(_ bytes: ArraySlice<UInt8>) -> UInt32? {
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(isDigit), part.count == 1 || part.first != UInt8(ascii: "0") else { return nil }
            let number = part.reduce(UInt32(0)) { $0 * 10 + UInt32($1 - UInt8(ascii: "0")) }
            guard number <= 255 else { return nil }
            value = value << 8 | number
        }
        return value
    }

    /// Whether inet_aton(3) could read the text as an address: one to four dot-separated
    /// numbers, each decimal, octal (leading 0) or hex (0x). The last label of a DNS name is
    /// never numeric (RFC 1123 §2.1), so no name is lost by refusing these.
    static func looksLikeInetAton(_ bytes: ArraySlice<UInt8>) -> Bool {
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard (1...4).contains(parts.count) else { return false }
        return parts.allSatisfy { part in
            if part.count > 2, part.first == UInt8(ascii: "0"), part.dropFirst().first.map({ $0 | 0x20 }) == UInt8(ascii: "x") {
                return part.dropFirst(2).allSatisfy { hexValue($0) != nil }
            }
            return !part.isEmpty && part.allSatisfy(isDigit)
        }
    }

    /// RFC 4291 §2.2: eight groups of 1–4 hex digits, or fewer around one "::"; the last 32
    /// bits may be a dotted quad.
    static func parseV6(_ bytes: ArraySlice<UInt8>) -> UInt128? {
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var sawGap = false
        var rest = bytes
        if rest.starts(with: [0x3A, 0x3A]) {
            sawGap = true
            rest = rest.dropFirst(2)
        } else if rest.first == UInt8(ascii: ":") {
            return nil
        }
        while !rest.isEmpty {
            let end = rest.firstIndex(of: UInt8(ascii: ":")) ?? rest.endIndex
            let group = rest[rest.startIndex..<end]
            if end == rest.endIndex, group.contains(UInt8(ascii: ".")) {
                // A dotted quad, as the last two groups.
                guard let v4 = parseV4(group) else { return nil }
                for half in [UInt16(v4 >> 16), UInt16(truncatingIfNeeded: v4)] {
                    if sawGap { tail.append(half) } else { head.append(half) }
                }
                rest = rest[end...]
                break
            }
            guard (1...4).contains(group.count) else { return nil }
            var value: UInt16 = 0
            for b in group {
                guard let digit = hexValue(b) else { return nil }
                value = value << 4 | UInt16(digit)
            }
            if sawGap { tail.append(value) } else { head.append(value) }
            rest = rest[end...]
            guard !rest.isEmpty else { break }
            rest = rest.dropFirst()  // ":"
            if rest.first == UInt8(ascii: ":") {
                guard !sawGap else { return nil }
                sawGap = true
                rest = rest.dropFirst()
            } else if rest.isEmpty {
                return nil  // a trailing single ":"
            }
        }
        let count = head.count + tail.count
        guard sawGap ? count <= 7 : count == 8 else { return nil }
        let groups = head + [UInt16](repeating: 0, count: 8 - count) + tail
        return groups.reduce(UInt128(0)) { $0 << 16 | UInt128($1) }
    }

    // MARK: Text

    /// Dotted quad, or RFC 5952 §4 IPv6 text: lowercase, the longest run of two or more zero
    /// groups as "::", a mapped IPv4 address as ::ffff:a.b.c.d.
    public var description: String {
        switch self {
        case .v4(let bits):
            return (0..<4).map { String((bits >> (24 - 8 * UInt32($0))) & 0xFF) }.joined(separator: ".")
        case .v6(let bits):
            if bits >> 32 == 0xFFFF { return "::ffff:" + IPAddress.v4(UInt32(truncatingIfNeeded: bits)).description }
            let groups = (0..<8).map { UInt16(truncatingIfNeeded: bits >> (112 - 16 * UInt128($0))) }
            var best = (start: -1, length: 1)
            var i = 0
            while i < 8 {
                var j = i
                while j < 8 && groups[j] == 0 { j += 1 }
                if j - i > best.length { best = (i, j - i) }
                i = j + 1
            }
            let text = groups.map { String($0, radix: 16) }
            guard best.start >= 0 else { return text.joined(separator: ":") }
            return text[..<best.start].joined(separator: ":") + "::" + text[(best.start + best.length)...].joined(separator: ":")
        }
    }
}

/// An address and a prefix length (a CIDR block); an address alone is a block of one.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    /// The first address, host bits zero.
    public let address: IPAddress
    public let prefixLength: Int

    /// `prefixLength` must fit the family; host bits are cleared.
    init(_ address: IPAddress, _ prefixLength: Int) {
        precondition((0...address.bitWidth).contains(prefixLength))
        self.prefixLength = prefixLength
        switch address {
        case .v4(let bits): self.address = .v4(prefixLength == 0 ? 0 : bits & ~UInt32(0) << (32 - prefixLength))
        case .v6(let bits): self.address = .v6(prefixLength == 0 ? 0 : bits & ~UInt128(0) << (128 - prefixLength))
        }
    }

    /// "10.0.0.0/8" or "2001:db8::/32": the address must have no bits set past the prefix
    /// (a typo such as 10.0.0.1/8 is refused, not widened).
    public static func parse(_ text: String) -> Result<IPNetwork, NetworkProblem> {
        let bytes = Array(text.utf8)
        guard let slash = bytes.firstIndex(of: UInt8(ascii: "/")) else {
            return IPAddress.parse(text).map { IPNetwork($0, $0.bitWidth) }.mapError { .address($0) }
        }
        let address: IPAddress
        switch IPAddress.parse(String(decoding: bytes[..<slash], as: UTF8.self)) {
        case .success(let parsed): address = parsed
        case .failure(let problem): return .failure(.address(problem))
        }
        let digits = bytes[(slash + 1)...]
        guard (1...3).contains(digits.count), digits.allSatisfy(IPAddress.isDigit), digits.count == 1 || digits.first != UInt8(ascii: "0"),
              let length = Int(String(decoding: digits, as: UTF8.self)), length <= address.bitWidth
        else { return .failure(.prefix(maximum: address.bitWidth)) }
        let network = IPNetwork(address, length)
        guard network.address == address else { return .failure(.hostBits(network)) }
        return .success(network)
    }

    public enum NetworkProblem: Error, Sendable, Hashable, CustomStringConvertible {
        case address(IPAddress.Problem)
        case prefix(maximum: Int)
        case hostBits(IPNetwork)

        public var description: String {
            switch self {
            case .address(let problem): problem.description
            case .prefix(let maximum): "has a prefix length that is not a whole number from 0 to \(maximum)"
            case .hostBits(let network): "has bits set past its prefix length; write \(network)"
            }
        }
    }

    public func contains(_ other: IPAddress) -> Bool {
        guard other.bitWidth == address.bitWidth else { return false }
        return IPNetwork(other, prefixLength).address == address
    }

    /// Whether every address of `self` is in `other`.
    public func isWithin(_ other: IPNetwork) -> Bool {
        prefixLength >= other.prefixLength && other.contains(address)
    }

    public var description: String { prefixLength == address.bitWidth ? address.description : "\(address)/\(prefixLength)" }
}
