import Glibc
import Policy
import POSIX
import Testing

@Suite struct ParsingTests {
    static let fullYAML = """
        version: 1
        agent: full-example
        description: "Every field"
        tools:
          exec:
            - program: /usr/bin/grep
              args:
                prefix: ["-n", "-e", "*"]
                rest: ["path:/data/**"]
                max: 10
              env: [LANG, "LC_*=C*"]
              cwd: [/data/**]
            - program: /usr/bin/*
              args: any
            - program: /bin/true
              args: [--version, "no", 10]
          files:
            read: [/data/**, /etc/hostname]
            write: [/out/**]
          buckets:
            - namespace: notes
              operations: [put, get]
            - namespace: intel/**
              operations: [query]
        limits:
          cycles: 50
          wall_time: 10m
          call_timeout: 45
          output_bytes: 2MiB
        resources:
          vcpus: 2
          memory_mib: 768
          gpus: 1
          sub_agents: 3
        """

    static let fullJSON = """
        {
          "version": 1,
          "agent": "full-example",
          "description": "Every field",
          "tools": {
            "exec": [
              {"program": "/usr/bin/grep",
               "args": {"prefix": ["-n", "-e", "*"], "rest": ["path:/data/**"], "max": 10},
               "env": ["LANG", "LC_*=C*"],
               "cwd": ["/data/**"]},
              {"program": "/usr/bin/*", "args": "any"},
              {"program": "/bin/true", "args": ["--version", "no", "10"]}
            ],
            "files": {"read": ["/data/**", "/etc/hostname"], "write": ["/out/**"]},
            "buckets": [
              {"namespace": "notes", "operations": ["put", "get"]},
              {"namespace": "intel/**", "operations": ["query"]}
            ]
          },
          "limits": {"cycles": 50, "wall_time": "10m", "call_timeout": 45, "output_bytes": "2MiB"},
          "resources": {"vcpus": 2, "memory_mib": 768, "gpus": 1, "sub_agents": 3}
        }
        """

    @Test func everyFieldIsRead() throws {
        let policy = try parse(Self.fullYAML)
        #expect(policy.version == 1)
        #expect(policy.agent == "full-example")
        #expect(policy.description == "Every field")
        let grep = try #require(policy.tools.exec.first)
        #expect(grep.program.pattern == "/usr/bin/grep")
        #expect(grep.rule == RuleRef("tools.exec[0]", line: nil))
        #expect(grep.rule.line == 6)
        #expect(grep.arguments.prefix.map(\.description) == ["-n", "-e", "*"])
        #expect(grep.arguments.rest.map(\.description) == ["path:/data/**"])
        #expect(grep.arguments.maximumCount == 10)
        #expect(grep.env.map(\.name.pattern) == ["LANG", "LC_*"])
        #expect(grep.env.map { $0.value?.pattern } == [nil, "C*"])
        #expect(grep.cwd?.map(\.glob.pattern) == ["/data/**"])
        let any = policy.tools.exec[1]
        #expect(any.arguments.prefix.isEmpty && any.arguments.rest.map(\.description) == ["*"])
        #expect(any.cwd == nil && any.env.isEmpty)
        // Plain scalars stay text as written: no YAML 1.1 "no" → false, 10 → "10".
        #expect(policy.tools.exec[2].arguments.prefix.map(\.description) == ["--version", "no", "10"])
        #expect(policy.tools.read.map(\.glob.pattern) == ["/data/**", "/etc/hostname"])
        #expect(policy.tools.read[1].rule.line == 18)
        #expect(policy.tools.write.map(\.glob.pattern) == ["/out/**"])
        #expect(policy.tools.buckets.map(\.namespace.pattern) == ["notes", "intel/**"])
        #expect(policy.tools.buckets.map(\.operations) == [[.put, .get], [.query]])
        #expect(policy.limits.cycles == 50)
        #expect(policy.limits.wallTime == .seconds(600))
        #expect(policy.limits.callTimeout == .seconds(45))
        #expect(policy.limits.outputBytes == 2 << 20)
        #expect(policy.limits.rules.cycles.line == 26)
        #expect(policy.resources == Resources(vcpus: 2, memoryMiB: 768, gpus: 1, subAgents: 3))
    }

    @Test func yamlAndJSONGiveTheSamePolicy() throws {
        let yaml = try parse(Self.fullYAML)
        let json = try parse(Self.fullJSON, .json, file: "full.json")
        #expect(yaml == json)
        #expect(json.tools.exec[0].rule.line == 7)
        #expect(json.limits.rules.cycles.line == 20)
        // And a real difference is seen.
        let other = try parse(Self.fullYAML.replacingAll("cycles: 50", with: "cycles: 51"))
        #expect(yaml != other)
    }

    @Test func defaultsForOmittedSections() throws {
        let policy = try parse("version: 1\nagent: nothing\n")
        #expect(policy.tools.exec.isEmpty && policy.tools.read.isEmpty && policy.tools.write.isEmpty && policy.tools.buckets.isEmpty)
        #expect(policy.limits == .defaults)
        #expect(policy.resources == .defaults)
    }

    @Test func jsonEscapesAndNumbersAreExact() throws {
        let policy = try parse(#"{"version": 1, "agent": "x", "description": "tab\there \u00e9 \ud83d\ude00 \/ \"q\"", "limits": {"cycles": 7}}"#, .json)
        #expect(policy.description == "tab\there é 😀 / \"q\"")
        #expect(policy.limits.cycles == 7)
    }

    struct Malformed: Sendable, CustomTestStringConvertible {
        var text: String
        var format: PolicyFormat = .yaml
        var line: Int
        var field: String
        var message: String
        var testDescription: String { "\(field) on line \(line)" }
    }

    static let malformed: [Malformed] = [
        Malformed(text: "version: 1\nagent: a\ntools:\n  exec:\n    - program: /bin/x\n    - program: /bin/y\n    - program: /usr/bin/grep\n      args: [\"[\"]\n",
                  line: 8, field: "tools.exec[2].args[0]", message: "pattern \"[\" is not a valid glob: it has an unterminated character class"),
        Malformed(text: "version: 1\nagent: a\nlimits:\n  cycels: 10\n", line: 4, field: "limits.cycels", message: "unknown key (expected one of: cycles, wall_time, call_timeout, output_bytes)"),
        Malformed(text: "version: 1\nagent: a\nlimits:\n  cycles: 10\n  cycles: 20\n", line: 5, field: "limits.cycles", message: "duplicate key (first on line 4)"),
        Malformed(text: "version: 2\nagent: a\n", line: 1, field: "version", message: "unsupported version 2 (this momin reads 1)"),
        Malformed(text: "agent: a\n", line: 1, field: "version", message: "missing (this momin reads version 1)"),
        Malformed(text: "version: 1\nagent: a\nlimits:\n  cycles: -5\n", line: 4, field: "limits.cycles", message: "must be at least 1, not -5"),
        Malformed(text: "version: 1\nagent: a\nlimits:\n  cycles: 0\n", line: 4, field: "limits.cycles", message: "must be at least 1, not 0"),
        Malformed(text: "version: 1\nagent: a\nlimits:\n  wall_time: 10 minutes\n", line: 4, field: "limits.wall_time",
                  message: "expected a duration such as 90, \"90s\", \"10m\" or \"1h\", found \"10 minutes\""),
        Malformed(text: "version: 1\nagent: a\nlimits:\n  output_bytes: 16MB\n", line: 4, field: "limits.output_bytes",
                  message: "expected a size such as 1048576, \"512KiB\" or \"16MiB\", found \"16MB\""),
        Malformed(text: "version: 1\nagent: a\ntools:\n  files:\n    read: /evidence/**\n", line: 5, field: "tools.files.read",
                  message: "expected a list, found the text \"/evidence/**\""),
        Malformed(text: "version: 1\nagent: a\ntools:\n  files:\n    write: [/out/../etc]\n", line: 5, field: "tools.files.write[0]",
                  message: "pattern \"/out/../etc\" is not a valid glob: it has a \".\" or \"..\" segment"),
        Malformed(text: "version: 1\nagent: a\ntools:\n  exec:\n    - args: any\n", line: 5, field: "tools.exec[0].program", message: "missing (an absolute path or glob)"),
        Malformed(text: "version: 1\nagent: a\ntools:\n  exec:\n    - program: grep\n", line: 5, field: "tools.exec[0].program",
                  message: "pattern \"grep\" is not a valid glob: it must be an absolute path (start with \"/\")"),
        Malformed(text: "version: 1\nagent: a\ntools:\n  buckets:\n    - namespace: notes\n      operations: [put, delete]\n", line: 6,
                  field: "tools.buckets[0].operations[1]", message: "unknown operation \"delete\" (expected put, get or query)"),
        Malformed(text: "version: 1\nagent: a\nresources:\n  vcpus: 300\n", line: 4, field: "resources.vcpus", message: "300 is more than 254"),
        Malformed(text: "version: 1\nagent: a\nresources:\n  gpus: -1\n", line: 4, field: "resources.gpus", message: "must not be negative (-1)"),
        Malformed(text: "version: 1\nagent: a\nresources:\n  memory_mib: \"512\"\n", line: 4, field: "resources.memory_mib",
                  message: "expected a whole number, found the text \"512\""),
        Malformed(text: "version: 1\nagent: a\ntools:\n  exec:\n    - program: /bin/env\n      env: [\"=x\"]\n", line: 6, field: "tools.exec[0].env[0]",
                  message: "\"=x\" has no name before \"=\""),
        Malformed(text: "version: 1\nagent: a b\n", line: 2, field: "agent",
                  message: "\"a b\" is not a name: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"),
        Malformed(text: "version: 1\nagent: a\nlimits:\n  wall_time: 1m\n  call_timeout: 2m\n", line: 5, field: "limits.call_timeout",
                  message: "2m is longer than wall_time 1m"),
        Malformed(text: "version: 1\nagent: a\ntools:\n  exec: [\n", line: 5, field: "", message: "not valid YAML"),
        // JSON: the same checks, with JSON lines.
        Malformed(text: "{\n  \"version\": 1,\n  \"agent\": \"a\",\n  \"limits\": {\n    \"cycles\": 1,\n    \"cycles\": 2\n  }\n}", format: .json,
                  line: 6, field: "limits.cycles", message: "duplicate key (first on line 5)"),
        Malformed(text: "{\n  \"version\": 1,\n  \"agent\": \"a\",\n  \"tools\": {\"exec\": [{\"program\": \"/bin/x\",\n    \"args\": [\"[\"]}]}\n}", format: .json,
                  line: 5, field: "tools.exec[0].args[0]", message: "pattern \"[\" is not a valid glob: it has an unterminated character class"),
        Malformed(text: "{\n  \"version\": 1,\n  \"agent\": \"a\",\n  \"limits\": {\"cycles\": 1.5}\n}", format: .json,
                  line: 4, field: "limits.cycles", message: "expected a whole number, found 1.5"),
        Malformed(text: "{\n  \"version\": 1,\n  \"agent\": \"a\"\n  \"tools\": {}\n}", format: .json,
                  line: 4, field: "", message: "not valid JSON: expected \",\" or \"}\""),
        Malformed(text: "{\"version\": 1, \"agent\": \"\\ud800\"}", format: .json, line: 1, field: "", message: "not valid JSON: a lone surrogate \\u escape"),
    ]

    @Test(arguments: malformed) func malformedFilesNameTheLineAndField(_ m: Malformed) throws {
        let file = m.format == .json ? "bad.json" : "bad.yaml"
        let error = try #require(parseError(m.text, m.format, file: file))
        #expect(error.file == file)
        #expect(error.line == m.line)
        #expect(error.field == m.field)
        if m.field.isEmpty {
            #expect(error.message.hasPrefix(m.message), "\(error)")
        } else {
            #expect(error.message == m.message)
            #expect(error.description == "\(file):\(m.line): \(m.field): \(m.message)")
        }
    }

    @Test func loadNamesTheFileAndRefusesUnknownFormats() throws {
        #expect(throws: PolicyError.self) { try AgentPolicy.load(path: "/nonexistent/policy.yaml") }
        do {
            _ = try AgentPolicy.load(path: "/nonexistent/policy.yaml")
        } catch {
            #expect(error.description == "/nonexistent/policy.yaml: cannot open: No such file or directory")
        }
        do {
            _ = try AgentPolicy.load(path: "/etc/hostname")
            Issue.record("a .txt-less name loaded")
        } catch {
            #expect(error.message.contains("unknown policy format"))
        }
    }

    /// Every worked example in docs/policies loads, and each YAML example equals its JSON twin.
    @Test func theDocumentedExamplesLoad() throws {
        let folder = repositoryRoot + "/docs/policies"
        let names = try FileIO.listDirectory(folder)
        #expect(names.filter { $0.hasSuffix(".yaml") }.count >= 3)
        for name in names where name.hasSuffix(".yaml") || name.hasSuffix(".json") {
            let policy = try AgentPolicy.load(path: folder + "/" + name)
            #expect(!policy.agent.isEmpty)
            if name.hasSuffix(".yaml"), names.contains(name.dropLast(5) + ".json") {
                #expect(try AgentPolicy.load(path: folder + "/" + name.dropLast(5) + ".json") == policy, "\(name)")
            }
        }
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
