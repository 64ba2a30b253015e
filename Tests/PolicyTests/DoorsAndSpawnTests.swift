import Policy
import Testing

@Suite struct DoorsAndSpawnTests {
    static let yaml = """
        version: 1
        agent: lead
        tools:
          doors:
            - door: findings
              send: ["triage", "triage.*"]
              receive: ["triage.*"]
              max_message_bytes: 128KiB
              queue_depth: 4
              log_content: true
            - door: "*"
              receive: [ops]
        resources:
          sub_agents: 2
        """

    static let json = """
        {
          "version": 1,
          "agent": "lead",
          "tools": {
            "doors": [
              {"door": "findings", "send": ["triage", "triage.*"], "receive": ["triage.*"],
               "max_message_bytes": "128KiB", "queue_depth": 4, "log_content": true},
              {"door": "*", "receive": ["ops"]}
            ]
          },
          "resources": {"sub_agents": 2}
        }
        """

    static let policy: AgentPolicy = try! parse(yaml)

    // MARK: Parsing

    @Test func everyDoorFieldIsRead() throws {
        let policy = Self.policy
        #expect(policy.tools.doorList?.line == 4)
        #expect(policy.tools.doors.count == 2)
        let findings = policy.tools.doors[0]
        #expect(findings.rule.id == "tools.doors[0]" && findings.rule.line == 5)
        #expect(findings.door.pattern == "findings")
        #expect(findings.send.map(\.pattern) == ["triage", "triage.*"])
        #expect(findings.receive.map(\.pattern) == ["triage.*"])
        #expect(findings.maxMessageBytes == 128 << 10)
        #expect(findings.queueDepth == 4)
        #expect(findings.logContent)
        // Left out: no sends, 64KiB, 16 messages, digests only.
        let any = policy.tools.doors[1]
        #expect(any.rule.line == 11)
        #expect(any.send.isEmpty && any.receive.map(\.pattern) == ["ops"])
        #expect(any.maxMessageBytes == 64 << 10 && any.queueDepth == 16 && !any.logContent)
        #expect(policy.resources.subAgents == 2)
        #expect(policy.resources.rules.subAgents.line == 14)
        #expect(policy.resources.rules.vcpus.line == nil)
    }

    @Test func yamlAndJSONGiveTheSameDoors() throws {
        let json = try parse(Self.json, .json, file: "lead.json")
        #expect(json == Self.policy)
        #expect(json.tools.doors[0].rule.line == 6)
        // Lines are not compared; values are.
        #expect(try parse("# moved\n\n" + Self.yaml) == Self.policy)
        #expect(try parse(Self.yaml.replacingAll("queue_depth: 4", with: "queue_depth: 5")) != Self.policy)
        #expect(try parse(Self.yaml.replacingAll("log_content: true", with: "log_content: false")) != Self.policy)
        #expect(try parse(Self.yaml.replacingAll("receive: [ops]", with: "receive: [ops, dev]")) != Self.policy)
        #expect(try parse(Self.yaml.replacingAll("sub_agents: 2", with: "sub_agents: 1")) != Self.policy)
    }

    @Test func theBoundsAreAccepted() throws {
        let policy = try parse("""
            version: 1
            agent: a
            tools:
              doors:
                - {door: a, send: [b], max_message_bytes: 1, queue_depth: 1, log_content: False}
                - {door: a, receive: [b], max_message_bytes: 1MiB, queue_depth: 1024, log_content: TRUE}
            """)
        #expect(policy.tools.doors.map(\.maxMessageBytes) == [1, 1 << 20])
        #expect(policy.tools.doors.map(\.queueDepth) == [1, 1024])
        #expect(policy.tools.doors.map(\.logContent) == [false, true])
    }

    struct Malformed: Sendable, CustomTestStringConvertible {
        var rule: String
        var line: Int
        var field: String
        var message: String
        var format: PolicyFormat = .yaml
        var testDescription: String { "\(field) on line \(line)" }

        /// `rule` is the YAML of `tools.doors`' entries, from line 5.
        var text: String { format == .json ? rule : "version: 1\nagent: a\ntools:\n  doors:\n" + rule }
    }

    static let malformed: [Malformed] = [
        Malformed(rule: "    - send: [x]\n", line: 5, field: "tools.doors[0].door", message: "missing (a door name or glob)"),
        Malformed(rule: "    - door: d\n      send: [x]\n      sned: [y]\n", line: 7, field: "tools.doors[0].sned",
                  message: "unknown key (expected one of: door, send, receive, max_message_bytes, queue_depth, log_content)"),
        Malformed(rule: "    - door: d\n", line: 5, field: "tools.doors[0]", message: "allows nothing: give send or receive a list of agent names"),
        Malformed(rule: "    - door: d\n      send: []\n      receive: []\n", line: 5, field: "tools.doors[0]",
                  message: "allows nothing: give send or receive a list of agent names"),
        Malformed(rule: "    - door: d\n      send: x\n", line: 6, field: "tools.doors[0].send", message: "expected a list, found the text \"x\""),
        Malformed(rule: "    - door: d\n      send: [x]\n      receive: [y, \"[\"]\n", line: 7, field: "tools.doors[0].receive[1]",
                  message: "pattern \"[\" is not a valid glob: it has an unterminated character class"),
        Malformed(rule: "    - door: \"[\"\n      send: [x]\n", line: 5, field: "tools.doors[0].door",
                  message: "pattern \"[\" is not a valid glob: it has an unterminated character class"),
        Malformed(rule: "    - door: [d]\n      send: [x]\n", line: 5, field: "tools.doors[0].door", message: "expected a string, found a list"),
        Malformed(rule: "    - door: d\n      send: [x]\n      max_message_bytes: 2MiB\n", line: 7, field: "tools.doors[0].max_message_bytes",
                  message: "2MiB is more than 1MiB"),
        Malformed(rule: "    - door: d\n      send: [x]\n      max_message_bytes: 1048577\n", line: 7, field: "tools.doors[0].max_message_bytes",
                  message: "1048577B is more than 1MiB"),
        Malformed(rule: "    - door: d\n      send: [x]\n      max_message_bytes: 0\n", line: 7, field: "tools.doors[0].max_message_bytes",
                  message: "must be more than zero"),
        Malformed(rule: "    - door: d\n      send: [x]\n      max_message_bytes: 64KB\n", line: 7, field: "tools.doors[0].max_message_bytes",
                  message: "expected a size such as 1048576, \"512KiB\" or \"16MiB\", found \"64KB\""),
        Malformed(rule: "    - door: d\n      send: [x]\n      queue_depth: 0\n", line: 7, field: "tools.doors[0].queue_depth",
                  message: "must be at least 1, not 0"),
        Malformed(rule: "    - door: d\n      send: [x]\n      queue_depth: 1025\n", line: 7, field: "tools.doors[0].queue_depth",
                  message: "1025 is more than 1024"),
        Malformed(rule: "    - door: d\n      send: [x]\n      queue_depth: \"8\"\n", line: 7, field: "tools.doors[0].queue_depth",
                  message: "expected a whole number, found the text \"8\""),
        Malformed(rule: "    - door: d\n      send: [x]\n      log_content: yes\n", line: 7, field: "tools.doors[0].log_content",
                  message: "expected true or false, found the text \"yes\""),
        Malformed(rule: "    - door: d\n      send: [x]\n      log_content: 1\n", line: 7, field: "tools.doors[0].log_content",
                  message: "expected true or false, found a number"),
        Malformed(rule: "    - door: a\n      send: [x]\n    - door: b\n      receive: [x]\n      receive: [y]\n", line: 9,
                  field: "tools.doors[1].receive", message: "duplicate key (first on line 8)"),
        Malformed(rule: "    door: d\n", line: 5, field: "tools.doors", message: "expected a list, found a mapping"),
        Malformed(rule: "{\"version\": 1, \"agent\": \"a\",\n \"tools\": {\"doors\": [{\"door\": \"d\", \"send\": [\"x\"], \"log_content\": \"true\"}]}}",
                  line: 2, field: "tools.doors[0].log_content", message: "expected true or false, found the text \"true\"", format: .json),
        Malformed(rule: "{\"version\": 1, \"agent\": \"a\",\n \"tools\": {\"door\": []}}", line: 2, field: "tools.door",
                  message: "unknown key (expected one of: exec, files, buckets, doors)", format: .json),
    ]

    @Test(arguments: malformed) func malformedDoorRulesNameTheLineAndField(_ m: Malformed) throws {
        let file = m.format == .json ? "bad.json" : "bad.yaml"
        let error = try #require(parseError(m.text, m.format, file: file))
        #expect(error.line == m.line)
        #expect(error.field == m.field)
        #expect(error.message == m.message)
    }

    // MARK: Evaluation

    struct Row: Sendable, CustomTestStringConvertible {
        var call: ToolCall
        var allowed: Bool
        var rule: String
        var reason: String
        var testDescription: String { "\(call) → \(allowed ? "allow" : "deny") \(rule)" }
    }

    static let notAName = "is not a name: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"

    static let rows: [Row] = [
        Row(call: .doorSend(door: "findings", to: "triage"), allowed: true, rule: "tools.doors[0]", reason: "allowed"),
        // Agent names are text globs: "*" crosses ".".
        Row(call: .doorSend(door: "findings", to: "triage.a.b"), allowed: true, rule: "tools.doors[0]", reason: "allowed"),
        Row(call: .doorSend(door: "findings", to: "triager"), allowed: false, rule: "tools.doors",
            reason: "sending on door \"findings\" to \"triager\" is not allowed"),
        Row(call: .doorSend(door: "alerts", to: "triage"), allowed: false, rule: "tools.doors",
            reason: "sending on door \"alerts\" to \"triage\" is not allowed"),
        Row(call: .doorSend(door: "alerts", to: "ops"), allowed: false, rule: "tools.doors",
            reason: "sending on door \"alerts\" to \"ops\" is not allowed"),
        Row(call: .doorReceive(door: "findings", from: "triage.a"), allowed: true, rule: "tools.doors[0]", reason: "allowed"),
        Row(call: .doorReceive(door: "findings", from: "triage"), allowed: false, rule: "tools.doors",
            reason: "receiving on door \"findings\" from \"triage\" is not allowed"),
        Row(call: .doorReceive(door: "findings", from: "ops"), allowed: true, rule: "tools.doors[1]", reason: "allowed"),
        Row(call: .doorReceive(door: "alerts", from: "ops"), allowed: true, rule: "tools.doors[1]", reason: "allowed"),
        Row(call: .doorReceive(door: "alerts", from: "ops2"), allowed: false, rule: "tools.doors",
            reason: "receiving on door \"alerts\" from \"ops2\" is not allowed"),
        Row(call: .doorSend(door: "find ings", to: "triage"), allowed: false, rule: "default", reason: "door name \"find ings\" " + notAName),
        Row(call: .doorReceive(door: "", from: "ops"), allowed: false, rule: "default", reason: "door name \"\" " + notAName),
        Row(call: .doorReceive(door: ".x", from: "ops"), allowed: false, rule: "default", reason: "door name \".x\" " + notAName),
        Row(call: .doorSend(door: "findings", to: ".hidden"), allowed: false, rule: "default", reason: "agent name \".hidden\" " + notAName),
        Row(call: .doorSend(door: "findings", to: "-x"), allowed: false, rule: "default", reason: "agent name \"-x\" " + notAName),
        Row(call: .doorSend(door: "findings", to: "triage/x"), allowed: false, rule: "default", reason: "agent name \"triage/x\" " + notAName),
        Row(call: .doorReceive(door: "findings", from: "triage.\n"), allowed: false, rule: "default", reason: "agent name \"triage.\\n\" " + notAName),
        Row(call: .doorSend(door: "findings", to: String(repeating: "t", count: 65)), allowed: false, rule: "default",
            reason: "agent name \"\(String(repeating: "t", count: 65))\" " + notAName),
        Row(call: .doorSend(door: String(repeating: "d", count: 64), to: "triage"), allowed: false, rule: "tools.doors",
            reason: "sending on door \"\(String(repeating: "d", count: 64))\" to \"triage\" is not allowed"),
        Row(call: .spawn, allowed: true, rule: "resources.sub_agents", reason: "allowed"),
    ]

    @Test(arguments: rows) func decisions(_ row: Row) {
        let decision = Self.policy.evaluate(row.call, resolver: LexicalResolver())
        #expect(decision.isAllowed == row.allowed)
        #expect(decision.rule.id == row.rule)
        #expect(decision.reason == row.reason)
    }

    @Test func decisionsCarryTheirLines() {
        let lexical = LexicalResolver()
        #expect(Self.policy.evaluate(.doorSend(door: "findings", to: "triage"), resolver: lexical).rule.line == 5)
        #expect(Self.policy.evaluate(.doorReceive(door: "x", from: "ops"), resolver: lexical).rule.line == 11)
        #expect(Self.policy.evaluate(.doorSend(door: "x", to: "ops"), resolver: lexical).rule.line == 4)
        #expect(Self.policy.evaluate(.spawn, resolver: lexical).rule.line == 14)
        #expect(Self.policy.evaluate(.doorSend(door: "x", to: "ops"), resolver: lexical).description
            == "deny tools.doors: sending on door \"x\" to \"ops\" is not allowed")
    }

    @Test func withoutDoorsOrSubAgentsNothingIsAllowed() throws {
        let lexical = LexicalResolver()
        for text in ["version: 1\nagent: a\n", "version: 1\nagent: a\ntools:\n  doors: []\n"] {
            let policy = try parse(text)
            for call in [ToolCall.doorSend(door: "d", to: "b"), .doorReceive(door: "d", from: "b")] {
                let decision = policy.evaluate(call, resolver: lexical)
                #expect(!decision.isAllowed)
                #expect(decision.rule == .defaultDeny)
                #expect(decision.reason == "the policy allows no doors")
            }
            let spawn = policy.evaluate(.spawn, resolver: lexical)
            #expect(!spawn.isAllowed)
            #expect(spawn.rule.id == "resources.sub_agents" && spawn.rule.line == nil)
            #expect(spawn.why == .subAgentsNotAllowed)
            #expect(spawn.reason == "the policy allows no sub-agents (resources.sub_agents is 0)")
        }
        let zero = try parse("version: 1\nagent: a\nresources:\n  sub_agents: 0\n").evaluate(.spawn, resolver: lexical)
        #expect(!zero.isAllowed && zero.rule.line == 4)
        #expect(try parse("version: 1\nagent: a\nresources: {sub_agents: 1}\n").evaluate(.spawn, resolver: lexical).isAllowed)
    }

    // MARK: The host's lookup

    @Test func doorRuleFindsTheRuleThatAllows() throws {
        let policy = Self.policy
        let send = try #require(policy.doorRule(door: "findings", sendingTo: "triage.x"))
        #expect(send.rule.id == "tools.doors[0]")
        #expect(send.maxMessageBytes == 128 << 10 && send.queueDepth == 4 && send.logContent)
        let fromOps = try #require(policy.doorRule(door: "findings", receivingFrom: "ops"))
        #expect(fromOps.rule.id == "tools.doors[1]")
        #expect(fromOps.maxMessageBytes == 64 << 10 && fromOps.queueDepth == 16 && !fromOps.logContent)
        #expect(policy.doorRule(door: "findings", receivingFrom: "triage.x")?.rule.id == "tools.doors[0]")
        #expect(policy.doorRule(door: "findings", sendingTo: "ops") == nil)
        #expect(policy.doorRule(door: "alerts", sendingTo: "triage") == nil)
        #expect(policy.doorRule(door: "findings", receivingFrom: "triage") == nil)
        #expect(policy.doorRule(door: "find ings", receivingFrom: "ops") == nil)
        #expect(policy.doorRule(door: "findings", receivingFrom: "-ops") == nil)
    }

    /// The lookup and the evaluator agree on every call.
    @Test func lookupAndEvaluationAgree() {
        for door in ["findings", "alerts", "x y"] {
            for peer in ["triage", "triage.a", "ops", "nobody", ".x"] {
                let send = Self.policy.evaluate(.doorSend(door: door, to: peer), resolver: LexicalResolver())
                #expect(send.isAllowed == (Self.policy.doorRule(door: door, sendingTo: peer) != nil), "\(door) → \(peer)")
                if send.isAllowed { #expect(send.rule == Self.policy.doorRule(door: door, sendingTo: peer)?.rule) }
                let receive = Self.policy.evaluate(.doorReceive(door: door, from: peer), resolver: LexicalResolver())
                #expect(receive.isAllowed == (Self.policy.doorRule(door: door, receivingFrom: peer) != nil), "\(door) ← \(peer)")
            }
        }
    }

    @Test func theTriageAgentReportsToItsLead() throws {
        let policy = try WorkedExampleTests.load("triage.yaml")
        let lexical = LexicalResolver()
        #expect(policy.evaluate(.doorSend(door: "findings", to: "lead"), resolver: lexical).isAllowed)
        #expect(policy.evaluate(.doorReceive(door: "findings", from: "lead"), resolver: lexical).isAllowed)
        #expect(!policy.evaluate(.doorSend(door: "findings", to: "triage.b"), resolver: lexical).isAllowed)
        #expect(!policy.evaluate(.doorSend(door: "chat", to: "lead"), resolver: lexical).isAllowed)
        #expect(!policy.evaluate(.spawn, resolver: lexical).isAllowed)
        #expect(policy.doorRule(door: "findings", sendingTo: "lead")?.maxMessageBytes == 256 << 10)
    }
}
