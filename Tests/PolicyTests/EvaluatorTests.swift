import Doors
import Policy
import Testing

@Suite struct EvaluatorTests {
    static let policyText = """
        version: 1
        agent: eval
        tools:
          exec:
            - program: /usr/bin/grep
              args:
                prefix: ["-[inc]", "-e", "*"]
                rest: ["path:/evidence/**"]
                max: 5
              env: [LANG=C.UTF-8]
              cwd: [/evidence/**]
            - program: /usr/bin/sha256sum
              args: { rest: ["path:/evidence/**"] }
            - program: /usr/bin/python3*
              args: ["-V"]
          files:
            read: [/evidence/**, /etc/hostname]
            write: [/out/**, /tmp/*/x]
          buckets:
            - namespace: cases/*/findings
              operations: [put, get]
        limits:
          call_timeout: 30s
        """

    static let policy: AgentPolicy = try! parse(policyText)

    /// /evidence/link-out → /etc; /evidence/link-in → /evidence/a; /out/escape → /evidence;
    /// /usr/bin/python3 → python3.11; /usr/bin/evil → /bin/sh; /tmp/loop ↔ /tmp/loop2.
    static let fs: FakeFileSystem = {
        var fs = FakeFileSystem()
        fs.add("/evidence/a/report.txt", .file)
        fs.add("/evidence/link-out", .symlink("/etc"))
        fs.add("/evidence/rel-out", .symlink("../etc/shadow"))
        fs.add("/evidence/link-in", .symlink("a"))
        fs.add("/etc/shadow", .file)
        fs.add("/etc/hostname", .file)
        fs.add("/out/escape", .symlink("/evidence"))
        fs.add("/out/report.md", .file)
        fs.add("/usr/bin/grep", .file)
        fs.add("/usr/bin/sha256sum", .file)
        fs.add("/usr/bin/python3.11", .file)
        fs.add("/usr/bin/python3", .symlink("python3.11"))
        fs.add("/usr/bin/evil", .symlink("/bin/sh"))
        fs.add("/bin/sh", .file)
        fs.add("/tmp/loop", .symlink("/tmp/loop2"))
        fs.add("/tmp/loop2", .symlink("/tmp/loop"))
        return fs
    }()

    func decide(_ call: ToolCall) -> Decision { Self.policy.evaluate(call, resolver: Self.fs) }

    func exec(_ argv: [String], env: [String] = ["LANG=C.UTF-8"], cwd: String? = "/evidence", timeout: UInt32? = nil) -> Decision {
        decide(.exec(ExecRequest(argv: argv, env: env, cwd: cwd, timeoutMilliseconds: timeout)))
    }

    struct Row: Sendable, CustomTestStringConvertible {
        var call: ToolCall
        var allowed: Bool
        var rule: String
        var reason: String
        var testDescription: String { "\(call) → \(allowed ? "allow" : "deny") \(rule)" }
    }

    static func e(_ argv: [String], env: [String] = ["LANG=C.UTF-8"], cwd: String? = "/evidence") -> ToolCall {
        .exec(ExecRequest(argv: argv, env: env, cwd: cwd))
    }

    static let rows: [Row] = [
        Row(call: e(["/usr/bin/grep", "-i", "-e", "secret", "/evidence/a/report.txt"]), allowed: true, rule: "tools.exec[0]", reason: "allowed"),
        Row(call: e(["/usr/bin/grep", "-i", "-e", "secret", "/evidence/a/report.txt", "/evidence/link-in/report.txt"]), allowed: true,
            rule: "tools.exec[0]", reason: "allowed"),
        Row(call: e(["/usr/bin/grep", "-f", "-e", "x", "/evidence/a"]), allowed: false, rule: "tools.exec[0].args",
            reason: "argument 1 \"-f\" matches no allowed pattern"),
        Row(call: e(["/usr/bin/grep", "-i", "-e", "x", "/etc/shadow"]), allowed: false, rule: "tools.exec[0].args",
            reason: "argument 4 \"/etc/shadow\" matches no allowed pattern"),
        Row(call: e(["/usr/bin/grep", "-i", "-e", "x", "/evidence/link-out/shadow"]), allowed: false, rule: "tools.exec[0].args",
            reason: "argument 4 \"/evidence/link-out/shadow\" matches no allowed pattern"),
        Row(call: e(["/usr/bin/grep", "-i", "-e", "x", "a/report.txt"]), allowed: false, rule: "tools.exec[0].args",
            reason: "argument 4 \"a/report.txt\" matches no allowed pattern"),
        Row(call: e(["/usr/bin/grep", "-i", "-e"]), allowed: false, rule: "tools.exec[0].args", reason: "2 arguments given, 3 to 5 allowed"),
        Row(call: e(["/usr/bin/grep", "-i", "-e", "x", "/evidence", "/evidence", "/evidence"]), allowed: false, rule: "tools.exec[0].args",
            reason: "6 arguments given, 3 to 5 allowed"),
        Row(call: e(["/usr/bin/grep", "-i", "-e", "x"], env: ["LANG=C.UTF-8", "LD_PRELOAD=/tmp/x.so"]), allowed: false, rule: "tools.exec[0].env",
            reason: "environment variable \"LD_PRELOAD=/tmp/x.so\" is not allowed"),
        Row(call: e(["/usr/bin/grep", "-i", "-e", "x"], env: ["LANG=de_DE"]), allowed: false, rule: "tools.exec[0].env",
            reason: "environment variable \"LANG=de_DE\" is not allowed"),
        Row(call: e(["/usr/bin/grep", "-i", "-e", "x"], env: ["LANG"]), allowed: false, rule: "tools.exec[0].env",
            reason: "environment entry \"LANG\" is not NAME=VALUE"),
        Row(call: e(["/usr/bin/grep", "-i", "-e", "x"], cwd: "/tmp"), allowed: false, rule: "tools.exec[0].cwd",
            reason: "working directory /tmp is not allowed"),
        Row(call: e(["/usr/bin/grep", "-i", "-e", "x"], cwd: "/evidence/link-out"), allowed: false, rule: "tools.exec[0].cwd",
            reason: "working directory /evidence/link-out is not allowed"),
        Row(call: e(["/usr/bin/grep", "-i", "-e", "x"], cwd: nil), allowed: false, rule: "tools.exec[0].cwd",
            reason: "working directory / is not allowed"),
        Row(call: e(["/usr/bin/sha256sum", "/evidence/a/report.txt"], env: [], cwd: nil), allowed: true, rule: "tools.exec[1]", reason: "allowed"),
        Row(call: e(["/usr/bin/sha256sum", "/evidence/a/report.txt"], env: [], cwd: "/evidence"), allowed: false, rule: "tools.exec[1].cwd",
            reason: "working directory /evidence is not allowed"),
        Row(call: e(["/usr/bin/sha256sum", "/evidence/rel-out"], env: [], cwd: nil), allowed: false, rule: "tools.exec[1].args",
            reason: "argument 1 \"/evidence/rel-out\" matches no allowed pattern"),
        Row(call: e(["/usr/bin/python3", "-V"], env: [], cwd: nil), allowed: true, rule: "tools.exec[2]", reason: "allowed"),
        Row(call: e(["/bin/rm", "-rf", "/"]), allowed: false, rule: "tools.exec", reason: "/bin/rm is not among the allowed programs"),
        Row(call: e(["grep", "x"]), allowed: false, rule: "tools.exec", reason: "program \"grep\" is relative (only absolute paths are judged)"),
        Row(call: e(["/usr/bin/../bin/grep", "-n", "-e", "x"]), allowed: false, rule: "tools.exec",
            reason: "program \"/usr/bin/../bin/grep\" must be written in normal form (/usr/bin/grep): the guest walks \"..\" through symlinks"),
        Row(call: e(["/usr/bin/grep", "-n", "-e", "x", "/evidence/link-out/../a"]), allowed: false, rule: "tools.exec[0].args",
            reason: "argument 4 \"/evidence/link-out/../a\" matches no allowed pattern"),
        Row(call: e(["/usr/bin/grep", "-n", "-e", "x"], cwd: "/evidence/a/"), allowed: false, rule: "tools.exec[0].cwd",
            reason: "cwd \"/evidence/a/\" must be written in normal form (/evidence/a): the guest walks \"..\" through symlinks"),
        Row(call: e(["/usr/bin/python3/../../../bin/sh"]), allowed: false, rule: "tools.exec",
            reason: "program \"/usr/bin/python3/../../../bin/sh\" must be written in normal form (/bin/sh): the guest walks \"..\" through symlinks"),
        Row(call: e([]), allowed: false, rule: "default", reason: "argv is empty"),
        Row(call: .readFile(path: "/evidence/a/report.txt"), allowed: true, rule: "tools.files.read[0]", reason: "allowed"),
        Row(call: .readFile(path: "/evidence/../etc/shadow"), allowed: false, rule: "tools.files.read", reason: "/etc/shadow is not readable"),
        Row(call: .readFile(path: "/evidence/link-out/shadow"), allowed: false, rule: "tools.files.read[0]",
            reason: "/evidence/link-out/shadow resolves to /etc/shadow, which is not readable"),
        Row(call: .readFile(path: "/evidence/rel-out"), allowed: false, rule: "tools.files.read[0]",
            reason: "/evidence/rel-out resolves to /etc/shadow, which is not readable"),
        Row(call: .readFile(path: "/evidence/link-in/report.txt"), allowed: true, rule: "tools.files.read[0]", reason: "allowed"),
        Row(call: .readFile(path: "evidence/a"), allowed: false, rule: "tools.files.read", reason: "path \"evidence/a\" is relative (only absolute paths are judged)"),
        Row(call: .readFile(path: "/evidence/a\0/x"), allowed: false, rule: "tools.files.read", reason: "path \"/evidence/a\\u0000/x\" contains a NUL byte"),
        Row(call: .stat(path: "/evidence/link-out", followSymlinks: false), allowed: true, rule: "tools.files.read[0]", reason: "allowed"),
        Row(call: .stat(path: "/evidence/link-out", followSymlinks: true), allowed: false, rule: "tools.files.read[0]",
            reason: "/evidence/link-out resolves to /etc, which is not readable"),
        Row(call: .list(path: "/etc"), allowed: false, rule: "tools.files.read", reason: "/etc is not readable"),
        Row(call: .readFile(path: "/etc/hostname"), allowed: true, rule: "tools.files.read[1]", reason: "allowed"),
        Row(call: .writeFile(path: "/out/report.md"), allowed: true, rule: "tools.files.write[0]", reason: "allowed"),
        Row(call: .writeFile(path: "/out/new/deep/file"), allowed: true, rule: "tools.files.write[0]", reason: "allowed"),
        Row(call: .writeFile(path: "/out/escape/a/report.txt"), allowed: false, rule: "tools.files.write[0]",
            reason: "/out/escape/a/report.txt resolves to /evidence/a/report.txt, which is not writable"),
        Row(call: .writeFile(path: "/evidence/a/report.txt"), allowed: false, rule: "tools.files.write", reason: "/evidence/a/report.txt is not writable"),
        Row(call: .writeFile(path: "/tmp/loop/x"), allowed: false, rule: "tools.files.write", reason: "/tmp/loop/x cannot be resolved (symlink loop, missing directory or error)"),
        Row(call: .remove(path: "/out/escape", recursive: false), allowed: true, rule: "tools.files.write[0]", reason: "allowed"),
        Row(call: .remove(path: "/out", recursive: true), allowed: true, rule: "tools.files.write[0]", reason: "allowed"),
        Row(call: .remove(path: "/tmp/a/x", recursive: true), allowed: false, rule: "tools.files.write",
            reason: "a recursive remove of /tmp/a/x needs the whole tree below it writable (a rule ending in /**)"),
        Row(call: .mkdir(path: "/out/a/b", parents: true), allowed: true, rule: "tools.files.write[0]", reason: "allowed"),
        Row(call: .mkdir(path: "/tmp/a/x", parents: false), allowed: true, rule: "tools.files.write[1]", reason: "allowed"),
        Row(call: .mkdir(path: "/tmp/a/x", parents: true), allowed: false, rule: "tools.files.write[1]",
            reason: "mkdir -p /tmp/a/x may create /tmp/a, which is not writable"),
        Row(call: .bucket(namespace: "cases/42/findings", operation: .put), allowed: true, rule: "tools.buckets[0]", reason: "allowed"),
        Row(call: .bucket(namespace: "cases/42/findings", operation: .query), allowed: false, rule: "tools.buckets",
            reason: "query on bucket namespace \"cases/42/findings\" is not allowed"),
        Row(call: .bucket(namespace: "cases/../findings", operation: .get), allowed: false, rule: "tools.buckets",
            reason: "bucket namespace \"cases/../findings\" is malformed"),
    ]

    @Test(arguments: rows) func decisions(_ row: Row) {
        let decision = decide(row.call)
        #expect(decision.isAllowed == row.allowed)
        #expect(decision.rule.id == row.rule)
        #expect(decision.reason == row.reason)
    }

    @Test func theDecidingRuleCarriesItsLine() {
        #expect(exec(["/usr/bin/grep", "-n", "-e", "x"]).rule.line == 5)
        #expect(exec(["/bin/rm"]).rule.line == 4)
        #expect(exec(["/usr/bin/grep", "-f", "-e", "x"]).rule.line == 6)
        #expect(decide(.readFile(path: "/etc/hostname")).rule.line == 17)
        #expect(exec(["/bin/rm"]).description == "deny tools.exec: /bin/rm is not among the allowed programs")
    }

    @Test func aProgramSymlinkOutOfTheGlobIsDenied() throws {
        let policy = try parse("version: 1\nagent: a\ntools:\n  exec:\n    - program: /usr/bin/*\n      args: any\n")
        let decision = policy.evaluate(.exec(ExecRequest(argv: ["/usr/bin/evil", "-c", "id"])), resolver: Self.fs)
        #expect(!decision.isAllowed)
        #expect(decision.rule.id == "tools.exec[0]")
        #expect(decision.reason == "/usr/bin/evil resolves to /bin/sh, which is not among the allowed programs")
        #expect(policy.evaluate(.exec(ExecRequest(argv: ["/usr/bin/grep", "-c", "id"])), resolver: Self.fs).isAllowed)
    }

    /// A multi-call binary: /usr/bin/sha256sum is a symlink to busybox. Allowed only where the
    /// rule names busybox as the binary it may resolve to; a symlink to anything else is not.
    @Test func aMultiCallBinaryIsAllowedOnlyWhereTheRuleNamesIt() throws {
        var fs = Self.fs
        fs.add("/bin/busybox", .file)
        fs.add("/usr/bin/sha256sum", .symlink("/bin/busybox"))
        fs.add("/usr/bin/md5sum", .symlink("/bin/sh"))
        let plain = try parse("version: 1\nagent: a\ntools:\n  exec:\n    - program: /usr/bin/sha256sum\n      args: any\n")
        let denied = plain.evaluate(.exec(ExecRequest(argv: ["/usr/bin/sha256sum", "/x"])), resolver: fs)
        #expect(!denied.isAllowed)
        #expect(denied.reason == "/usr/bin/sha256sum resolves to /bin/busybox, which is not among the allowed programs")

        let named = try parse("version: 1\nagent: a\ntools:\n  exec:\n    - program: /usr/bin/*sum\n      binary: /bin/busybox\n      args: any\n")
        #expect(named.evaluate(.exec(ExecRequest(argv: ["/usr/bin/sha256sum", "/x"])), resolver: fs).isAllowed)
        let elsewhere = named.evaluate(.exec(ExecRequest(argv: ["/usr/bin/md5sum", "/x"])), resolver: fs)
        #expect(!elsewhere.isAllowed)
        #expect(elsewhere.reason == "/usr/bin/md5sum resolves to /bin/sh, which is not among the allowed programs")
        // Calling the binary itself is another program, which the rule does not name.
        #expect(!named.evaluate(.exec(ExecRequest(argv: ["/bin/busybox", "rm", "-rf", "/"])), resolver: fs).isAllowed)
    }

    @Test func timeoutsAboveTheCallLimitAreDenied() {
        #expect(exec(["/usr/bin/grep", "-n", "-e", "x"], timeout: 30_000).isAllowed)
        let decision = exec(["/usr/bin/grep", "-n", "-e", "x"], timeout: 30_001)
        #expect(!decision.isAllowed)
        #expect(decision.rule.id == "limits.call_timeout")
        #expect(decision.reason == "timeout 30001 ms is longer than the per-call limit of 30s")
    }

    @Test func anEmptyPolicyDeniesEverything() throws {
        let policy = try parse("version: 1\nagent: nobody\n")
        let calls: [ToolCall] = [
            .exec(ExecRequest(argv: ["/bin/true"])), .readFile(path: "/"), .writeFile(path: "/x"), .list(path: "/"),
            .mkdir(path: "/x", parents: false), .remove(path: "/x", recursive: false), .stat(path: "/", followSymlinks: false),
            .bucket(namespace: "x", operation: .get),
        ]
        for call in calls {
            let decision = policy.evaluate(call, resolver: LexicalResolver())
            #expect(!decision.isAllowed, "\(call)")
            #expect(decision.rule == .defaultDeny)
        }
    }

    @Test func aResolverThatAnswersNonsenseIsDenied() throws {
        struct Liar: PathResolver {
            func canonicalPath(_ path: String, followFinalSymlink: Bool) -> String? { "relative/answer" }
        }
        let decision = Self.policy.evaluate(.readFile(path: "/evidence/a/report.txt"), resolver: Liar())
        #expect(!decision.isAllowed)
        #expect(decision.why == .unresolvable(path: "/evidence/a/report.txt"))
    }

    @Test func doorsRequestsMapToCalls() {
        #expect(ToolCall(.readFile(ReadFileRequest(path: "/a"))) == .readFile(path: "/a"))
        #expect(ToolCall(.remove(RemoveRequest(path: "/a", recursive: true))) == .remove(path: "/a", recursive: true))
        #expect(ToolCall(.mkdir(MkdirRequest(path: "/a", parents: true))) == .mkdir(path: "/a", parents: true))
        #expect(ToolCall(.stat(StatRequest(path: "/a", followSymlinks: true))) == .stat(path: "/a", followSymlinks: true))
        #expect(ToolCall(.ping(nonce: 1)) == nil)
    }
}

/// One agent's own limits: a tree of one (`TreeUsage`), its verdicts as decisions.
@Suite struct OwnLimitTests {
    static let limits: Limits = {
        var limits = Limits.defaults
        limits.cycles = 3
        limits.wallTime = .seconds(60)
        limits.outputBytes = 1000
        return limits
    }()

    static let second: UInt64 = 1_000_000_000

    func decision(_ verdict: TreeUsage.Verdict, _ rule: RuleRef) -> Decision? {
        verdict.decision(for: "a", rules: Self.limits.rules, allowedBy: rule)
    }

    @Test func cyclesRunOut() {
        var usage = TreeUsage(root: "a", budget: TreeUsage.Budget(Self.limits), now: 0)
        for used in 1...3 {
            #expect(decision(usage.admitCall("a", now: Self.second), Self.limits.rules.cycles)?.isAllowed == true)
            #expect(usage.member("a")?.cycles == used)
        }
        let denied = decision(usage.admitCall("a", now: 2 * Self.second), Self.limits.rules.cycles)
        #expect(denied?.isAllowed == false)
        #expect(denied?.rule.id == "limits.cycles")
        #expect(denied?.reason == "the limit of 3 tool calls is used up")
        #expect(usage.member("a")?.cycles == 3)
    }

    @Test func wallTimeRunsOut() {
        var usage = TreeUsage(root: "a", budget: TreeUsage.Budget(Self.limits), now: 0)
        #expect(decision(usage.admitCall("a", now: 59_999 * Self.second / 1000), Self.limits.rules.cycles)?.isAllowed == true)
        let denied = decision(usage.admitCall("a", now: 60 * Self.second), Self.limits.rules.cycles)
        #expect(denied?.isAllowed == false && denied?.rule.id == "limits.wall_time")
        #expect(denied?.reason == "the wall time limit of 1m has passed")
        #expect(usage.member("a")?.cycles == 1)
        #expect(usage.remainingWallTime("a", now: 30 * Self.second) == 30 * Self.second)
    }

    @Test func outputRunsOut() {
        var usage = TreeUsage(root: "a", budget: TreeUsage.Budget(Self.limits), now: 0)
        let rule = Self.limits.rules.outputBytes
        #expect(decision(usage.recordOutput("a", bytes: 600, now: 0), rule)?.isAllowed == true)
        #expect(decision(usage.recordOutput("a", bytes: 400, now: 0), rule)?.isAllowed == true)
        #expect(usage.remainingOutputBytes("a") == 0)
        let denied = decision(usage.recordOutput("a", bytes: 1, now: 0), rule)
        #expect(denied?.isAllowed == false && denied?.rule.id == "limits.output_bytes")
        #expect(decision(usage.recordOutput("a", bytes: Int.max, now: 0), rule)?.isAllowed == false)
        #expect(decision(usage.recordOutput("b", bytes: 1, now: 0), rule) == nil)
    }

    @Test func anAncestorsLimitIsNamedWithItsAgent() {
        var usage = TreeUsage(root: "lead", budget: TreeUsage.Budget(Self.limits), now: 0)
        var child = TreeUsage.Budget(Self.limits)
        child.wallTimeNanoseconds = 10 * Self.second
        #expect(usage.join("lead.a", parent: "lead", budget: child, now: 0) == nil)
        for _ in 0..<3 { _ = usage.admitCall("lead", now: 1) }
        let denied = usage.admitCall("lead.a", now: 1).decision(for: "lead.a", rules: Self.limits.rules, allowedBy: Self.limits.rules.cycles)
        #expect(denied?.rule.id == "limits.cycles@lead")
        #expect(denied?.reason == "the limit of 3 tool calls is used up, in the budget of lead, which covers the agents under it")
    }
}

/// The worked examples do what docs/policy.md says they do.
@Suite struct WorkedExampleTests {
    static func load(_ name: String) throws -> AgentPolicy { try AgentPolicy.load(path: repositoryRoot + "/docs/policies/" + name) }

    @Test func theCodingAgentsGitRules() throws {
        let policy = try Self.load("coding.yaml")
        func git(_ args: [String]) -> Decision {
            policy.evaluate(.exec(ExecRequest(argv: ["/usr/bin/git"] + args, cwd: "/workspace/repo")), resolver: LexicalResolver())
        }
        #expect(git(["status", "--short"]).isAllowed)
        #expect(git(["diff", "--stat", "Sources/x.swift"]).isAllowed)
        #expect(git(["commit", "-m", "Fix the parser"]).isAllowed)
        #expect(!git(["push", "origin", "main"]).isAllowed)
        #expect(!git(["-c", "core.sshCommand=sh", "status"]).isAllowed)
        #expect(!git(["diff", "--output=/etc/cron.d/x"]).isAllowed)
        #expect(!git(["config", "user.name", "x"]).isAllowed)
        let chmod = policy.evaluate(.exec(ExecRequest(argv: ["/usr/bin/chmod", "777", "/workspace"], cwd: "/workspace")), resolver: LexicalResolver())
        #expect(chmod.reason == "/usr/bin/chmod is not among the allowed programs")
    }

    @Test func theTriageAgentNeverWritesEvidence() throws {
        let policy = try Self.load("triage.yaml")
        var fs = FakeFileSystem()
        fs.add("/evidence/disk/notes.txt", .file)
        fs.add("/evidence/disk/planted", .symlink("/etc/shadow"))
        fs.add("/etc/shadow", .file)
        #expect(policy.evaluate(.readFile(path: "/evidence/disk/notes.txt"), resolver: fs).isAllowed)
        #expect(!policy.evaluate(.readFile(path: "/evidence/disk/planted"), resolver: fs).isAllowed)
        #expect(!policy.evaluate(.writeFile(path: "/evidence/disk/notes.txt"), resolver: fs).isAllowed)
        #expect(!policy.evaluate(.remove(path: "/evidence", recursive: true), resolver: fs).isAllowed)
        #expect(policy.evaluate(.writeFile(path: "/out/report.md"), resolver: fs).isAllowed)
        let strings = ExecRequest(argv: ["/usr/bin/strings", "-n", "8", "/evidence/disk/planted"], cwd: "/evidence")
        #expect(!policy.evaluate(.exec(strings), resolver: fs).isAllowed)
        #expect(policy.evaluate(.bucket(namespace: "threat-intel/iocs", operation: .query), resolver: fs).isAllowed)
        #expect(!policy.evaluate(.bucket(namespace: "threat-intel/iocs", operation: .put), resolver: fs).isAllowed)
    }
}
