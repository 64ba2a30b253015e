import Policy
import TestRandom
import Testing

/// A sub-agent's `network` and `brain` lie within its parent's: each egress rule within one of
/// the parent's in every field, caps no higher (none is wider), the same Brain endpoint.
@Suite struct EgressNarrowingTests {
    static let parent: AgentPolicy = try! parse("""
        version: 1
        agent: lead
        network:
          egress:
            - host: "**.example.com"
              scheme: any
              ports: [80, 443, 8000-8099]
            - host: docs.test
              scheme: http
              methods: [GET, HEAD]
              paths: [/docs/**]
            - host: 10.0.0.0/8
            - host: 0.0.0.0/0
              ports: [8443]
          limits: { connections: 8, bytes_per_session: 64MiB }
        brain:
          base_url: https://api.example.com/v1
          models: ["claude-*"]
          max_tokens_per_call: 4096
          max_requests: 100
        """)

    /// The child's widenings: `network` its egress rules, `limits` its network.limits.
    static func widenings(_ network: String, limits: String = "  limits: { connections: 8, bytes_per_session: 64MiB }\n") -> [String] {
        let child = try! parse("version: 1\nagent: lead.a\nnetwork:\n  egress:\n" + network + (network.hasSuffix("\n") ? "" : "\n") + limits)
        return child.widenings(over: parent).map(\.description)
    }

    @Test func narrowerEgressRulesPass() {
        #expect(Self.widenings("""
                - host: api.example.com
                - host: "*.example.com"
                  scheme: http
                  ports: [8000-8010, 80]
                  methods: [GET]
                - host: docs.test
                  scheme: http
                  methods: [GET]
                  paths: [/docs/swift/**]
                - host: 10.1.0.0/16
                - host: 93.184.216.0/24
                  ports: [8443]
            """).isEmpty)
    }

    @Test func widerEgressRulesAreNamed() {
        let cases: [(String, String)] = [
            ("    - host: evil.test\n", "network.egress[0] (line 5): host \"evil.test\" is not within any of the parent's network.egress rules"),
            ("    - host: \"**.com\"\n", "host \"**.com\" is not within"),
            ("    - host: api.example.com\n      ports: [22]\n", "ports 22 is not within the parent's network.egress[0] (line 5), which allows 80, 443, 8000-8099"),
            ("    - host: api.example.com\n      ports: [8000-8100]\n", "ports 8000-8100 is not within"),
            ("    - host: docs.test\n      scheme: any\n", "scheme any is not within the parent's network.egress[1] (line 8), which allows http"),
            ("    - host: docs.test\n      scheme: http\n", "any method is not within the parent's network.egress[1] (line 8), which allows GET, HEAD"),
            ("    - host: docs.test\n      scheme: http\n      methods: [GET, POST]\n", "methods GET, POST is not within"),
            ("    - host: docs.test\n      scheme: http\n      methods: [GET]\n", "any path is not within"),
            ("    - host: docs.test\n      scheme: http\n      methods: [GET]\n      paths: [/admin/**]\n", "paths \"/admin/**\" is not within"),
            // 0.0.0.0/0 reaches no special address; a child naming 127.0.0.1 inside it would.
            ("    - host: 127.0.0.1\n      ports: [8443]\n", "reaching the special block 127.0.0.0/8 is not within the parent's network.egress[3] (line 13), which allows only the public addresses of 0.0.0.0/0"),
            ("    - host: 169.254.169.254\n      ports: [8443]\n", "reaching the special block 169.254.0.0/16"),
            ("    - host: 10.0.0.0/7\n", "ports 443 is not within the parent's network.egress[3] (line 13), which allows 8443"),
        ]
        for (rule, expected) in cases {
            let found = Self.widenings(rule)
            #expect(found.count == 1 && found[0].contains(expected), "\(rule): \(found)")
        }
    }

    @Test func capsAndLogContentNarrow() {
        #expect(Self.widenings("    - host: a.example.com\n", limits: "  limits: { connections: 9 }\n")
                == ["network.limits.connections (line 6): connections 9 is more than the parent's 8",
                    "network.limits.bytes_per_session: bytes_per_session is unlimited, the parent's is 64MiB"])
        #expect(Self.widenings("    - host: a.example.com\n", limits: "  limits: { connections: 8, bytes_per_session: 1GiB }\n")
                == ["network.limits.bytes_per_session (line 6): bytes_per_session 1GiB is more than the parent's 64MiB"])
        let logging = try! parse("version: 1\nagent: p\nnetwork:\n  egress:\n    - host: \"**.example.com\"\n      log_content: true\n")
        let quiet = try! parse("version: 1\nagent: c\nnetwork:\n  egress:\n    - host: a.example.com\n")
        #expect(quiet.widenings(over: logging).map(\.reason) == ["log_content false where the parent's network.egress[0] (line 5) logs content"])
        #expect(logging.widenings(over: quiet).count == 1)  // and the host is wider
    }

    @Test func theBrainNarrows() {
        func brain(_ body: String) -> [String] {
            let child = try! parse("version: 1\nagent: lead.a\nbrain:\n" + body)
            return child.widenings(over: Self.parent).map(\.reason)
        }
        #expect(brain("  base_url: https://api.example.com/v1/\n  models: [claude-3]\n  max_tokens_per_call: 1024\n  max_requests: 10\n").isEmpty)
        #expect(brain("  base_url: https://evil.test/v1\n  models: [claude-3]\n  max_tokens_per_call: 1024\n  max_requests: 10\n")
                == ["base_url https://evil.test/v1 is not the parent's https://api.example.com/v1"])
        #expect(brain("  base_url: https://api.example.com/v1\n  models: [\"*\"]\n  max_tokens_per_call: 1024\n  max_requests: 10\n")
                == ["model \"*\" is not within any of the parent's brain.models"])
        #expect(brain("  base_url: https://api.example.com/v1\n  models: [claude-3]\n  max_tokens_per_call: 8192\n")
                == ["max_tokens_per_call 8192 is more than the parent's 4096", "max_requests is unlimited, the parent's is 100"])
        let none = try! parse("version: 1\nagent: p\n")
        let child = try! parse("version: 1\nagent: c\nbrain:\n  base_url: https://x.com\n  models: [x]\n")
        #expect(child.widenings(over: none).map(\.reason) == ["the parent allows no Brain calls (it has no brain section)"])
    }
}

/// Generated parent and child egress sections over a small vocabulary of names, blocks, ports,
/// schemes, methods and paths: whenever `widenings(over:)` finds nothing, every connection and
/// request the child is allowed, the parent is allowed too.
@Suite struct EgressNarrowingPropertyTests {
    static let hosts = ["\"**.example.com\"", "\"*.example.com\"", "api.example.com", "example.com", "\"**\"", "10.0.0.0/8", "10.1.0.0/16",
                        "10.1.2.3", "0.0.0.0/0", "93.184.216.0/24", "127.0.0.1", "\"::/0\"", "\"fd00::/8\""]
    static let ports = ["443", "80", "\"8000-8099\"", "\"8000-8010\"", "22"]
    static let schemes = ["tls", "http", "any"]
    static let methods = ["GET", "HEAD", "POST"]
    static let paths = ["/docs/**", "/docs/a/*", "/api/**", "/**"]

    struct Rule {
        var host: String
        var ports: [String]?
        var scheme: String
        var methods: [String]?
        var paths: [String]?
        var log: Bool

        var yaml: String {
            var text = "    - host: \(host)\n      scheme: \(scheme)\n      log_content: \(log)\n"
            if let ports { text += "      ports: [\(ports.joined(separator: ", "))]\n" }
            if let methods { text += "      methods: [\(methods.joined(separator: ", "))]\n" }
            if let paths { text += "      paths: [\(paths.joined(separator: ", "))]\n" }
            return text
        }
    }

    static func rule(_ random: inout SeededGenerator) -> Rule {
        let scheme = random.pick(schemes)
        func some(_ from: [String]) -> [String] { Array(Set((0..<Int.random(in: 1...2, using: &random)).map { _ in random.pick(from) })).sorted() }
        return Rule(host: random.pick(hosts), ports: random.chance(50) ? some(ports) : nil, scheme: scheme,
                    methods: scheme == "http" && random.chance(50) ? some(methods) : nil,
                    paths: scheme == "http" && random.chance(50) ? some(paths) : nil, log: random.chance(15))
    }

    static func yaml(_ rules: [Rule]) -> String { "version: 1\nagent: a\nnetwork:\n  egress:\n" + rules.map(\.yaml).joined() }

    static let resolved: [[IPAddress]] = [[.v4(0x5DB8_D822)], [.v4(0x0A01_0203)], [.v4(0x0A00_0005), .v4(0x5DB8_D822)], [.v6(0xFFFF_7F00_0001)], [.v6(0xFD00 << 112 | 1)]]
    static let names = ["api.example.com", "a.b.example.com", "example.com", "other.test", "10.1.2.3", "10.9.9.9", "93.184.216.34", "127.0.0.1",
                        "::ffff:10.1.2.3", "fd00::1", "2606:4700::1"]

    @Test func aChildWithNoWideningsIsAllowedNothingItsParentIsNot() throws {
        var random = SeededGenerator(seed: 0x6567_7265_7373)
        var narrower = 0
        var wider = 0
        var checked = 0
        for round in 0..<1500 {
            let parentRules = (0..<Int.random(in: 1...3, using: &random)).map { _ in Self.rule(&random) }
            var childRules = parentRules.filter { _ in random.chance(70) }.map { rule in
                var rule = rule
                if random.chance(20) { rule.host = random.pick(Self.hosts) }
                if random.chance(20) { rule.ports = random.chance(50) ? [random.pick(Self.ports)] : nil }
                if random.chance(15) { rule.scheme = random.pick(Self.schemes) }
                if rule.scheme != "http" { (rule.methods, rule.paths) = (nil, nil) }
                if random.chance(20), rule.scheme == "http" { rule.methods = random.chance(50) ? [random.pick(Self.methods)] : nil }
                if random.chance(20), rule.scheme == "http" { rule.paths = random.chance(50) ? [random.pick(Self.paths)] : nil }
                if random.chance(10) { rule.log.toggle() }
                return rule
            }
            if childRules.isEmpty || random.chance(15) { childRules.append(Self.rule(&random)) }
            let parent = try parse(Self.yaml(parentRules))
            let child = try parse(Self.yaml(childRules))
            guard child.widenings(over: parent).isEmpty else {
                wider += 1
                continue
            }
            narrower += 1
            for host in Self.names {
                for addresses in Self.resolved {
                    for port: UInt16 in [443, 80, 8005, 8050, 22] {
                        let calls: [ToolCall] = [
                            .connect(host: host, port: port, scheme: .tls, resolved: addresses),
                            .connect(host: host, port: port, scheme: .http, resolved: addresses),
                            .httpRequest(host: host, port: port, method: "GET", path: "/docs/a/b", resolved: addresses),
                            .httpRequest(host: host, port: port, method: "POST", path: "/api/x", resolved: addresses),
                        ]
                        for call in calls where child.evaluate(call, resolver: LexicalResolver()).isAllowed {
                            checked += 1
                            #expect(parent.evaluate(call, resolver: LexicalResolver()).isAllowed, "round \(round): \(call)")
                            let (mine, theirs) = (child.evaluate(call, resolver: LexicalResolver()), parent.evaluate(call, resolver: LexicalResolver()))
                            if let theirs = parent.egressRule(for: theirs), theirs.logContent {
                                #expect(child.egressRule(for: mine)?.logContent == true, "round \(round): \(call) logged by the parent only")
                            }
                        }
                    }
                }
            }
        }
        #expect(narrower > 200 && wider > 300 && checked > 2000, "\(narrower) narrower, \(wider) wider, \(checked) calls")
    }
}
