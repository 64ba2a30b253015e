import Policy
import Testing

/// `network.egress` and `network.limits`: read from YAML and JSON, judged per destination with
/// the host's resolved addresses, special addresses only where a rule names them.
@Suite struct EgressTests {
    static let yaml = """
        version: 1
        agent: web
        network:
          egress:
            - host: api.github.com
            - host: "**.pypi.org"
              scheme: any
            - host: docs.example.com
              scheme: http
              ports: [80, 8000-8099]
              methods: [GET, HEAD]
              paths: [/docs/**, /index.html]
              log_content: true
            - host: internal.corp
            - host: 10.1.0.0/16
              ports: [443]
            - host: 169.254.169.254
              scheme: http
              methods: [GET]
              paths: [/latest/meta-data/instance-id]
            - host: 0.0.0.0/0
              ports: [8443]
          limits:
            connections: 4
            bytes_per_session: 64MiB
        """

    static let policy: AgentPolicy = try! parse(yaml)
    static let publicAddress = IPAddress.v4(0x5DB8_D822)  // 93.184.216.34
    static let privateAddress = IPAddress.v4(0x0A01_0203)  // 10.1.2.3
    static let otherPrivate = IPAddress.v4(0x0A00_0005)  // 10.0.0.5
    static let mappedLoopback = IPAddress.v6(0xFFFF_7F00_0001)  // ::ffff:127.0.0.1

    static func connect(_ host: String, _ port: UInt16 = 443, _ scheme: EgressScheme = .tls, _ resolved: [IPAddress] = [publicAddress],
                        policy: AgentPolicy = policy) -> Decision {
        policy.evaluate(.connect(host: host, port: port, scheme: scheme, resolved: resolved), resolver: LexicalResolver())
    }

    static func request(_ host: String, _ method: String, _ path: String, port: UInt16 = 80, _ resolved: [IPAddress] = [publicAddress]) -> Decision {
        policy.evaluate(.httpRequest(host: host, port: port, method: method, path: path, resolved: resolved), resolver: LexicalResolver())
    }

    static func rule(_ index: Int) -> RuleRef { policy.network.egress[index].rule }
    static var list: RuleRef { policy.network.egressList! }

    @Test func everyEgressFieldIsRead() throws {
        let rules = Self.policy.network.egress
        #expect(rules.map(\.host.description) == ["api.github.com", "**.pypi.org", "docs.example.com", "internal.corp", "10.1.0.0/16",
                                                  "169.254.169.254", "0.0.0.0/0"])
        #expect(rules.map(\.scheme) == [.tls, .any, .http, .tls, .tls, .http, .tls])
        #expect(rules.map { $0.ports.map(\.description) } == [["443"], ["80", "443"], ["80", "8000-8099"], ["443"], ["443"], ["80"], ["8443"]])
        #expect(rules[2].methods == ["GET", "HEAD"] && rules[0].methods == nil)
        #expect(rules[2].paths?.map(\.pattern) == ["/docs/**", "/index.html"] && rules[1].paths == nil)
        #expect(rules.map(\.logContent) == [false, false, true, false, false, false, false])
        #expect(rules.map(\.rule.id) == (0..<7).map { "network.egress[\($0)]" })
        #expect(rules.map(\.rule.line) == [5, 6, 8, 14, 15, 17, 21])
        #expect(Self.policy.network.limits.connections == 4 && Self.policy.network.limits.bytesPerSession == 64 << 20)
        #expect(Self.policy.network.limits.rules.connections.line == 24)
        let json = try parse("""
            {"version": 1, "agent": "web", "network": {"egress": [
              {"host": "api.github.com"}, {"host": "**.pypi.org", "scheme": "any"},
              {"host": "docs.example.com", "scheme": "http", "ports": [80, "8000-8099"], "methods": ["GET", "HEAD"],
               "paths": ["/docs/**", "/index.html"], "log_content": true},
              {"host": "internal.corp"}, {"host": "10.1.0.0/16", "ports": [443]},
              {"host": "169.254.169.254", "scheme": "http", "methods": ["GET"], "paths": ["/latest/meta-data/instance-id"]},
              {"host": "0.0.0.0/0", "ports": [8443]}],
             "limits": {"connections": 4, "bytes_per_session": "64MiB"}}}
            """, .json)
        #expect(json == Self.policy)
        // No section: nothing allowed, no caps.
        let none = try parse("version: 1\nagent: a\n")
        #expect(none.network.egress.isEmpty && none.network.limits.connections == nil)
        #expect(Self.connect("api.github.com", policy: none) == .deny(.defaultDeny, .nothingAllowed("network egress")))
    }

    @Test func badEgressRulesNameTheirField() {
        let cases: [(String, String, String)] = [
            ("- host: Example.com", "network.egress[0].host", "lowercase"),
            ("- host: 0177.0.0.1", "network.egress[0].host", "resolvers read as an IPv4 address"),
            ("- host: \"2130706433\"", "network.egress[0].host", "numeric form"),
            ("- host: 10.0.0.1/8", "network.egress[0].host", "write 10.0.0.0/8"),
            ("- host: \"::ffff:10.0.0.1\"", "network.egress[0].host", "name the IPv4 address"),
            ("- host: \"api*.example.com\"", "network.egress[0].host", "whole labels"),
            ("- host: x.com\n      ports: [0]", "network.egress[0].ports[0]", "expected a port"),
            ("- host: x.com\n      ports: [65536]", "network.egress[0].ports[0]", "expected a port"),
            ("- host: x.com\n      ports: [\"90-80\"]", "network.egress[0].ports[0]", "reversed range"),
            ("- host: x.com\n      ports: []", "network.egress[0].ports", "allows no port"),
            ("- host: x.com\n      scheme: ftp", "network.egress[0].scheme", "expected http, tls or any"),
            ("- host: x.com\n      methods: [GET]", "network.egress[0].methods", "only to scheme http"),
            ("- host: x.com\n      scheme: http\n      methods: [get]", "network.egress[0].methods[0]", "not a method"),
            ("- host: x.com\n      scheme: http\n      methods: [GET, GET]", "network.egress[0].methods[1]", "listed twice"),
            ("- host: x.com\n      scheme: http\n      paths: [docs]", "network.egress[0].paths[0]", "not a valid glob"),
            ("- ports: [443]", "network.egress[0].host", "missing"),
            ("- host: x.com\n      proxy: y", "network.egress[0].proxy", "unknown key"),
        ]
        expectFieldErrors("version: 1\nagent: a\nnetwork:\n  egress:\n    ", cases)
        #expect(parseError("version: 1\nagent: a\nnetwork:\n  egress:\n    - host: x.com\n      scheme: http\n      methods: [GET, GET]\n")?.line == 7)
        let limits = parseError("version: 1\nagent: a\nnetwork:\n  limits:\n    connections: 0\n")
        #expect(limits?.field == "network.limits.connections" && limits?.line == 5)
        #expect(parseError("version: 1\nagent: a\nnetwork:\n  limits:\n    bytes_per_session: 10MB\n")?.field == "network.limits.bytes_per_session")
    }

    @Test func aNameIsAllowedByTheFirstRuleThatFitsAndTheAddressesAreReturned() {
        #expect(Self.connect("api.github.com") == .allow(Self.rule(0), judged: .addresses([Self.publicAddress])))
        #expect(Self.connect("API.GitHub.com.") == .allow(Self.rule(0), judged: .addresses([Self.publicAddress])))
        #expect(Self.connect("files.pypi.org", 80, .http).isAllowed)
        #expect(Self.connect("pypi.org").isAllowed)
        #expect(Self.connect("pypi.org.evil.test") == .deny(Self.list, .hostNotAllowed(host: "pypi.org.evil.test")))
        #expect(Self.connect("api.github.com", 22) == .deny(Self.rule(0), .portNotAllowed(host: "api.github.com", port: 22)))
        #expect(Self.connect("api.github.com", 443, .http) == .deny(Self.rule(0), .schemeNotAllowed(host: "api.github.com", scheme: .http)))
        #expect(Self.connect("api.github.com", 443, .tls, []) == .deny(Self.rule(0), .unresolved(host: "api.github.com")))
        // Any name on 8443 through 0.0.0.0/0? No: a block never matches a name.
        #expect(Self.connect("other.test", 8443) == .deny(Self.list, .hostNotAllowed(host: "other.test")))
    }

    @Test func aNameThatResolvesToASpecialAddressIsRefused() {
        let denial = Self.connect("api.github.com", 443, .tls, [Self.publicAddress, Self.otherPrivate])
        #expect(denial == .deny(Self.rule(0), .specialAddress(host: "api.github.com", address: Self.otherPrivate, kind: .private)))
        #expect(denial.reason == "api.github.com resolves to 10.0.0.5, a private address, which no rule names")
        // The mapped form of loopback is loopback: the classic bypass.
        #expect(Self.connect("api.github.com", 443, .tls, [Self.mappedLoopback])
                == .deny(Self.rule(0), .specialAddress(host: "api.github.com", address: Self.mappedLoopback, kind: .loopback)))
        #expect(Self.connect("api.github.com", 443, .tls, [.v4(0xA9FE_A9FE)]).reason
                == "api.github.com resolves to 169.254.169.254, a link-local address, which no rule names")
        // internal.corp → 10.1.2.3, named by 10.1.0.0/16 for port 443: allowed.
        #expect(Self.connect("internal.corp", 443, .tls, [Self.privateAddress]) == .allow(Self.rule(3), judged: .addresses([Self.privateAddress])))
        #expect(Self.connect("internal.corp", 443, .tls, [.v6(0xFFFF_0A01_0203)]).isAllowed)  // ::ffff:10.1.2.3
        #expect(!Self.connect("internal.corp", 443, .tls, [Self.otherPrivate]).isAllowed)
    }

    @Test func addressLiteralsNeedABlockThatNamesThem() {
        #expect(Self.connect("10.1.2.3", 443, .tls, []) == .allow(Self.rule(4), judged: .addresses([Self.privateAddress])))
        #expect(Self.connect("10.1.2.3", 443, .tls, [Self.privateAddress]).isAllowed)
        #expect(Self.connect("10.1.2.3", 443, .tls, [Self.publicAddress]).why == .malformedCall("an address literal resolves only to itself"))
        #expect(Self.connect("10.1.2.3", 80, .tls, []) == .deny(Self.rule(4), .portNotAllowed(host: "10.1.2.3", port: 80)))
        // 0.0.0.0/0 reaches public addresses, not special ones.
        #expect(Self.connect("93.184.216.34", 8443, .tls, []) == .allow(Self.rule(6), judged: .addresses([Self.publicAddress])))
        #expect(Self.connect("10.0.0.5", 8443, .tls, []).reason == "10.0.0.5 is a private address, which no rule names")
        #expect(Self.connect("127.0.0.1", 8443, .tls, []).why == .specialAddress(host: "127.0.0.1", address: .v4(0x7F00_0001), kind: .loopback))
        #expect(Self.connect("::ffff:127.0.0.1", 8443, .tls, []).why == .specialAddress(host: "::ffff:127.0.0.1", address: Self.mappedLoopback, kind: .loopback))
        #expect(Self.connect("93.184.216.34", 443, .tls, []) == .deny(Self.rule(6), .portNotAllowed(host: "93.184.216.34", port: 443)))
        #expect(Self.connect("2606:4700::1111", 443, .tls, []) == .deny(Self.list, .hostNotAllowed(host: "2606:4700::1111")))
        // Odd literals are refused before any rule.
        for odd in ["0177.0.0.1", "2130706433", "127.1", "0x7f.0.0.1"] {
            #expect(Self.connect(odd, 8443, .tls, []) == .deny(Self.list, .badHost(host: odd, problem: .address(.ambiguousIPv4))), "\(odd)")
        }
        #expect(Self.connect("x.test", 0).why == .malformedCall("port 0 is not a destination"))
    }

    @Test func plainHTTPRequestsAreJudgedByMethodAndPath() {
        #expect(Self.request("docs.example.com", "GET", "/docs/swift/intro") == .allow(Self.rule(2), judged: .addresses([Self.publicAddress])))
        #expect(Self.request("docs.example.com", "HEAD", "/index.html", port: 8080).isAllowed)
        #expect(Self.request("docs.example.com", "GET", "/docs/").isAllowed)
        #expect(Self.request("docs.example.com", "POST", "/docs/x") == .deny(Self.rule(2), .methodNotAllowed(host: "docs.example.com", method: "POST")))
        #expect(Self.request("docs.example.com", "GET", "/admin") == .deny(Self.rule(2), .requestPathNotAllowed(host: "docs.example.com", path: "/admin")))
        #expect(Self.request("docs.example.com", "GET", "/docs", port: 9000) == .deny(Self.rule(2), .portNotAllowed(host: "docs.example.com", port: 9000)))
        // Paths that a server would read as another path are refused before any rule.
        for path in ["/docs/../admin", "/docs/%2e%2e/admin", "/docs/%2F..", "/docs//x", "/docs/x?y=1", "docs/x", "/docs/\\..\\admin", "/docs/%zz"] {
            #expect(Self.request("docs.example.com", "GET", path).why.description.hasPrefix("request path"), "\(path)")
        }
        #expect(Self.request("docs.example.com", "get", "/docs/x").why == .malformedCall("method \"get\" is not an HTTP method: 1 to 20 uppercase letters"))
        // The cloud metadata endpoint, named by address for one path only.
        #expect(Self.request("169.254.169.254", "GET", "/latest/meta-data/instance-id", []).isAllowed)
        #expect(Self.request("169.254.169.254", "GET", "/latest/meta-data/iam/security-credentials/x", []).why
                == .requestPathNotAllowed(host: "169.254.169.254", path: "/latest/meta-data/iam/security-credentials/x"))
        // A tls rule does not allow plain requests; an `any` rule allows any method and path.
        #expect(Self.request("api.github.com", "GET", "/", port: 443).why == .schemeNotAllowed(host: "api.github.com", scheme: .http))
        #expect(Self.request("files.pypi.org", "DELETE", "/x").isAllowed)
    }

    @Test func anEgressDecisionNamesItsRule() {
        #expect(Self.policy.egressRule(for: Self.request("docs.example.com", "GET", "/docs/x"))?.logContent == true)
        #expect(Self.policy.egressRule(for: Self.connect("evil.test")) == nil)
    }

    /// docs/policies/agent-web.yaml decides as docs/policy.md says it does.
    @Test func theWorkedExampleDecidesAsDocumented() throws {
        let policy = try AgentPolicy.load(path: repositoryRoot + "/docs/policies/agent-web.yaml")
        func connect(_ host: String, _ resolved: [IPAddress]) -> String {
            policy.evaluate(.connect(host: host, port: 443, scheme: .tls, resolved: resolved), resolver: LexicalResolver()).description
        }
        let loopback = connect("pypi.org", [.v4(0x7F00_0001)])
        #expect(loopback == "deny network.egress[0]: pypi.org resolves to 127.0.0.1, a loopback address, which no rule names")
        #expect(policy.network.egress[0].rule.line == 15 && policy.network.egressList?.line == 13)
        #expect(connect("evil.test", [Self.publicAddress]) == "deny network.egress: no network.egress rule allows host evil.test")
        #expect(connect("search.corp.example", [.v4(0x0A14_0107)]) == "allow network.egress[5]")
        #expect(policy.network.egress[5].rule.line == 29)
        #expect(connect("pypi.org", [.v4(0x0A14_0107)]).hasPrefix("allow"))  // 10.20.0.0/16 names it for any allowed name
        #expect(connect("raw.githubusercontent.com", [Self.publicAddress]) == "allow network.egress[3]")
        #expect(connect("githubusercontent.com.evil.test", [Self.publicAddress]).hasPrefix("deny"))
    }
}
