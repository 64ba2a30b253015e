import Policy
import Testing

/// The address classifier and the host forms a call or a rule may use: strict literals only,
/// every special block classified, mapped addresses judged as the IPv4 address inside.
@Suite struct AddressTests {
    static func address(_ text: String) -> IPAddress? {
        if case .success(let address) = IPAddress.parse(text) { return address }
        return nil
    }

    @Test func strictLiteralsParseAndPrintCanonically() {
        let cases: [(String, String)] = [
            ("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "0.0.0.0"), ("255.255.255.255", "255.255.255.255"),
            ("::1", "::1"), ("::", "::"), ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"), ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"),
            ("fe80::1:2", "fe80::1:2"), ("::ffff:10.0.0.5", "::ffff:10.0.0.5"), ("::ffff:a00:5", "::ffff:10.0.0.5"),
            ("64:ff9b::192.0.2.1", "64:ff9b::c000:201"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"), ("1::", "1::"),
        ]
        for (text, canonical) in cases {
            #expect(Self.address(text)?.description == canonical, "\(text)")
        }
        #expect(Self.address("10.1.2.3") == .v4(0x0A01_0203))
        #expect(Self.address("::1") == .v6(1))
    }

    @Test func oddNumericFormsAreRefusedAsAmbiguous() {
        // inet_aton(3) reads every one of these as 127.0.0.1 (or another address).
        for text in ["0177.0.0.1", "2130706433", "127.1", "127.0.1", "0x7f.0.0.1", "0x7F000001", "017700000001", "127.0.0.01", "1.2.3.04"] {
            #expect(IPAddress.parse(text) == .failure(.ambiguousIPv4), "\(text)")
            #expect(HostName.normalize(text) == .failure(.address(.ambiguousIPv4)), "\(text)")
            #expect(HostPattern.parse(text) == .failure(.network(.address(.ambiguousIPv4))), "\(text)")
        }
        for text in ["256.0.0.1", "1.2.3.4.5", "1..2.3", "1:2:3:4:5:6:7:8:9", "1::2::3", ":1::", "1:::2", "12345::", "::1.2.3", "g::1", "1:2:3:4:5:6:7::8:9"] {
            #expect(Self.address(text) == nil, "\(text)")
        }
        #expect(IPAddress.parse("fe80::1%eth0") == .failure(.zone))
        #expect(IPAddress.parse(String(repeating: "1", count: 100)) == .failure(.tooLong))
    }

    @Test func everySpecialClassIsRecognised() {
        let cases: [(String, AddressClass)] = [
            ("127.0.0.1", .loopback), ("127.255.1.2", .loopback), ("::1", .loopback),
            ("0.0.0.0", .unspecified), ("0.1.2.3", .unspecified), ("::", .unspecified),
            ("169.254.169.254", .linkLocal), ("169.254.0.1", .linkLocal), ("fe80::1", .linkLocal), ("febf::1", .linkLocal),
            ("10.0.0.5", .private), ("172.16.0.1", .private), ("172.31.255.255", .private), ("192.168.1.1", .private),
            ("100.64.0.1", .private), ("100.127.255.255", .private), ("fc00::1", .private), ("fd12:3456::1", .private),
            ("224.0.0.1", .multicast), ("239.255.255.250", .multicast), ("ff02::1", .multicast),
            ("255.255.255.255", .broadcast), ("240.0.0.1", .reserved), ("198.18.0.1", .reserved),
            ("192.0.2.1", .documentation), ("198.51.100.7", .documentation), ("203.0.113.9", .documentation), ("2001:db8::1", .documentation),
            ("::10.0.0.5", .reserved),
            // Just outside the blocks.
            ("172.32.0.1", .public), ("172.15.255.255", .public), ("100.128.0.1", .public), ("169.255.0.1", .public),
            ("11.0.0.1", .public), ("93.184.216.34", .public), ("2606:4700::1111", .public), ("fec0::1", .private), ("fe7f::1", .public),
        ]
        for (text, kind) in cases {
            #expect(Self.address(text)?.addressClass == kind, "\(text)")
        }
    }

    /// ::ffff:127.0.0.1 reaches 127.0.0.1: judged as that, never as a public IPv6 address.
    @Test func mappedAndNAT64AddressesAreJudgedAsTheIPv4Inside() throws {
        let mapped = try #require(Self.address("::ffff:127.0.0.1"))
        #expect(mapped.effective == .v4(0x7F00_0001))
        #expect(mapped.addressClass == .loopback)
        #expect(Self.address("::ffff:169.254.169.254")?.addressClass == .linkLocal)
        #expect(Self.address("::ffff:8.8.8.8")?.addressClass == .public)
        #expect(Self.address("64:ff9b::10.0.0.1")?.addressClass == .private)
        #expect(Self.address("64:ff9b::8.8.8.8")?.addressClass == .public)
        // A rule for the IPv4 block covers the mapped form; a rule in the mapped form is refused.
        guard case .success(let block) = IPNetwork.parse("10.0.0.0/8") else { Issue.record("10.0.0.0/8"); return }
        #expect(block.reaches(try #require(Self.address("::ffff:10.1.2.3"))))
        guard case .failure(.embedsIPv4) = HostPattern.parse("::ffff:10.0.0.0/104") else { Issue.record("mapped rule accepted"); return }
        guard case .failure(.embedsIPv4) = HostPattern.parse("::ffff:127.0.0.1") else { Issue.record("mapped rule accepted"); return }
    }

    @Test func blocksReachSpecialAddressesOnlyWhenTheyNameThem() throws {
        func block(_ text: String) throws -> IPNetwork { try IPNetwork.parse(text).get() }
        let everything = try block("0.0.0.0/0")
        #expect(everything.reaches(try #require(Self.address("93.184.216.34"))))
        #expect(!everything.reaches(try #require(Self.address("10.0.0.5"))))
        #expect(!everything.reaches(try #require(Self.address("169.254.169.254"))))
        #expect(try block("10.0.0.0/8").reaches(try #require(Self.address("10.0.0.5"))))
        #expect(try block("10.0.0.0/24").reaches(try #require(Self.address("10.0.0.5"))))
        #expect(!(try block("10.0.1.0/24").reaches(try #require(Self.address("10.0.0.5")))))
        #expect(try block("169.254.169.254").reaches(try #require(Self.address("169.254.169.254"))))
        // A block wider than the special one it holds: 8.0.0.0/5 holds 10/8 but does not name it.
        #expect(!(try block("8.0.0.0/5").reaches(try #require(Self.address("10.0.0.5")))))
        // The broadcast address needs itself named; 240.0.0.0/4 holds it but names the reserved block.
        #expect(!(try block("240.0.0.0/4").reaches(try #require(Self.address("255.255.255.255")))))
        #expect(!(try block("::/96").reaches(try #require(Self.address("::1")))))
        #expect(try block("::1").reaches(try #require(Self.address("::1"))))
    }

    @Test func blocksMustHaveNoHostBits() {
        #expect(IPNetwork.parse("10.0.0.1/8").map(\.description) == .failure(.hostBits(try! IPNetwork.parse("10.0.0.0/8").get())))
        for text in ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/08", "::/129", "10.0.0.0/a"] {
            guard case .failure(.prefix) = IPNetwork.parse(text) else { Issue.record("\(text)"); continue }
        }
        #expect(IPNetwork.parse("2001:db8::/32").map(\.description) == .success("2001:db8::/32"))
    }

    @Test func hostNamesAreLowercasedAndOddFormsRefused() {
        #expect(HostName.normalize("API.Example.COM.") == .success(.name("api.example.com")))
        #expect(HostName.normalize("10.0.0.5") == .success(.address(.v4(0x0A00_0005))))
        #expect(HostName.normalize("::1") == .success(.address(.v6(1))))
        let refused: [(String, HostName.Problem)] = [
            ("", .empty), ("a..b", .badLabel), ("-a.com", .badLabel), ("a-.com", .badLabel), ("a_b.com", .badLabel), ("a b", .badLabel),
            ("caf\u{E9}.com", .badLabel), ("x.123", .numericLastLabel), (String(repeating: "a", count: 64) + ".com", .badLabel),
            (String(repeating: "a.", count: 130) + "com", .tooLong), ("[::1]", .address(.notAnAddress)),
        ]
        for (text, problem) in refused {
            #expect(HostName.normalize(text) == .failure(problem), "\(text)")
        }
    }

    @Test func nameGlobsMatchWholeLabels() throws {
        func pattern(_ text: String) throws -> NamePattern {
            guard case .name(let pattern) = try HostPattern.parse(text).get() else { throw HostPattern.HostProblem.wildcardLabel }
            return pattern
        }
        let one = try pattern("*.example.com")
        #expect(one.matches("api.example.com") && !one.matches("example.com") && !one.matches("a.b.example.com") && !one.matches("evilexample.com"))
        let any = try pattern("**.example.com")
        #expect(any.matches("example.com") && any.matches("a.b.example.com") && !any.matches("example.com.evil.test") && !any.matches("notexample.com"))
        #expect(try pattern("api.**").matches("api.x.y") && !(try pattern("api.**").matches("x.api")))
        #expect(try pattern("**").matches("anything.at.all"))
        // Containment.
        #expect(one.isWithin(any) && !any.isWithin(one))
        #expect(try pattern("a.*.example.com").isWithin(any) && !(try pattern("**.com").isWithin(any)))
        #expect(try pattern("api.example.com").isWithin(one) && !(try pattern("example.com").isWithin(one)))
        #expect(try pattern("*.*.com").isWithin(try pattern("**.com")) && !(try pattern("**.com").isWithin(try pattern("*.*.com"))))
        #expect(!(try pattern("*.example.com").isWithin(try pattern("api.example.com"))))
        for bad in ["a*.example.com", "**.**.com", "Example.com", "x..com", "*.1"] {
            guard case .failure = HostPattern.parse(bad) else { Issue.record("\(bad) accepted"); continue }
        }
    }
}
