import Policy
import POSIX
import TestRandom
import Testing

@Suite struct GlobContainmentTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var child: String
        var parent: String
        var kind: Glob.Kind
        var within: Bool
        init(_ child: String, _ parent: String, _ kind: Glob.Kind, _ within: Bool) {
            self.child = child
            self.parent = parent
            self.kind = kind
            self.within = within
        }
        var testDescription: String { "\(child) within \(parent) (\(kind)) → \(within)" }
    }

    static let cases: [Case] = [
        // Paths: identical, a literal the parent matches, everything, PREFIX/**.
        Case("/data/**", "/data/**", .path, true),
        Case("/data/*", "/data/*", .path, true),
        Case("/data/x", "/data/**", .path, true),
        Case("/data", "/data/**", .path, true),
        Case("/data/x.txt", "/data/*.txt", .path, true),
        Case("/data/\\*", "/data/[*]", .path, true),
        Case("/data/*/y", "/data/**", .path, true),
        Case("/data/x/**", "/data/**", .path, true),
        Case("/data/*/y/**", "/data/*/**", .path, true),
        Case("/anything/**", "/**", .path, true),
        Case("/", "/**", .path, true),
        // Refused: not true at all...
        Case("/data/**", "/data/*", .path, false),
        Case("/data/*", "/data", .path, false),
        Case("/etc/x", "/data/**", .path, false),
        Case("/database/**", "/data/**", .path, false),
        Case("/data/**", "/data/x/**", .path, false),
        Case("/", "/*", .path, false),
        Case("/**", "/data/**", .path, false),
        // ...or true but not proven (conservative).
        Case("/data/a*", "/data/*", .path, false),
        Case("/data/x/**", "/data/*/**", .path, false),
        // Text: "*" crosses everything, so PREFIX* covers whatever starts with PREFIX.
        Case("a*b", "a*", .text, true),
        Case("abc", "a*", .text, true),
        Case("a?", "a*", .text, true),
        Case("anything/at all", "*", .text, true),
        Case("*a", "*", .text, true),
        Case("triage.*", "triage.*", .text, true),
        Case("triage.a.*", "triage.*", .text, true),
        Case("triage.a.b", "triage.*", .text, true),
        Case("\\*?", "\\**", .text, true),
        Case("-i", "-[inc]", .text, true),
        Case("*", "a*", .text, false),
        Case("b*", "a*", .text, false),
        Case("[ab]x", "a*", .text, false),
        Case("triage", "triage.*", .text, false),
        Case("triage.*", "triage", .text, false),
        Case("a*", "a*b", .text, false),
        Case("-f", "-[inc]", .text, false),
        Case("a*", "a?*", .text, false),
        // Namespaces.
        Case("cases/1/findings", "cases/*/findings", .namespace, true),
        Case("cases/*/findings", "cases/**", .namespace, true),
        Case("x/y", "**", .namespace, true),
        Case("cases/**", "cases/*/findings", .namespace, false),
        Case("casesX/a", "cases/**", .namespace, false),
    ]

    @Test(arguments: cases) func containment(_ c: Case) throws {
        let child = try Glob(c.child, kind: c.kind)
        let parent = try Glob(c.parent, kind: c.kind)
        #expect(child.isWithin(parent) == c.within)
    }

    @Test func differentKindsAreNeverWithin() throws {
        #expect(!(try Glob("/a", kind: .path)).isWithin(try Glob("*", kind: .text)))
        #expect(!(try Glob("a", kind: .text)).isWithin(try Glob("**", kind: .namespace)))
        #expect((try Glob("a", kind: .text)).isWithin(try Glob("*", kind: .text)))
    }

    /// Soundness: whenever `isWithin` says yes, every generated text the child matches, the
    /// parent matches too.
    @Test func withinIsNeverWrongOnGeneratedCases() throws {
        var random = SeededGenerator(seed: 0x776974_68696E)
        var proven = 0
        var checked = 0
        let pathSegments = ["a", "b", "*", "?", "**", "a*", "*b", "[ab]"]
        let paths = (0..<300).map { _ in
            "/" + (0..<Int.random(in: 0...4, using: &random)).map { _ in random.pick(["a", "b", "ab", "ba", "c"]) }.joined(separator: "/")
        }
        for _ in 0..<3000 {
            let child = "/" + (0..<Int.random(in: 1...3, using: &random)).map { _ in random.pick(pathSegments) }.joined(separator: "/")
            // A parent often shares the child's first segments, so PREFIX/** is exercised.
            let shared = child.split(separator: "/").prefix(Int.random(in: 0...2, using: &random)).joined(separator: "/")
            let tail = (0..<Int.random(in: 0...2, using: &random)).map { _ in random.pick(pathSegments) }
            let parent = "/" + ([shared].filter { !$0.isEmpty } + tail).joined(separator: "/")
            let c = try Glob(child, kind: .path)
            guard parent != "/" || child == "/", let p = try? Glob(parent, kind: .path), c.isWithin(p) else { continue }
            proven += 1
            for path in paths where c.matches(path) {
                checked += 1
                #expect(p.matches(path), "\(child) within \(parent), but \(path)")
            }
        }
        let textAtoms = ["a", "b", ".", "*", "?", "[ab]"]
        let texts = (0..<300).map { _ in (0..<Int.random(in: 0...5, using: &random)).map { _ in random.pick(["a", "b", "."]) }.joined() }
        for _ in 0..<3000 {
            let child = (0..<Int.random(in: 1...4, using: &random)).map { _ in random.pick(textAtoms) }.joined()
            let parent = String(child.prefix(Int.random(in: 0...2, using: &random))) + random.pick(["*", "", "a", "?*"])
            guard !parent.isEmpty, let p = try? Glob(parent, kind: .text) else { continue }
            let c = try Glob(child, kind: .text)
            guard c.isWithin(p) else { continue }
            proven += 1
            for text in texts where c.matches(text) {
                checked += 1
                #expect(p.matches(text), "\(child) within \(parent), but \(text)")
            }
        }
        #expect(proven > 500)
        #expect(checked > 5000)
    }
}

extension GlobContainmentTests {
    @Test func overlap() throws {
        func overlaps(_ a: String, _ b: String, _ kind: Glob.Kind = .text) throws -> Bool {
            let (x, y) = (try Glob(a, kind: kind), try Glob(b, kind: kind))
            #expect(x.mayOverlap(y) == y.mayOverlap(x), "\(a) and \(b) overlap one way only")
            return x.mayOverlap(y)
        }
        #expect(try overlaps("reports", "*") && overlaps("rep*", "re*") && overlaps("*s", "r*") && overlaps("reports", "rep*"))
        #expect(try !overlaps("reports", "alerts") && !overlaps("rep*", "al*") && !overlaps("reports", "rap*") && !overlaps("a?", "abc"))
        #expect(try overlaps("/data/**", "/data/x/*", .path) && overlaps("/*/x", "/data/**", .path))
        #expect(try !overlaps("/data/**", "/etc/*", .path) && !overlaps("/data/x", "/data/*.txt", .path))
        #expect(try !overlaps("cases/**", "intel/*", .namespace))
    }

    /// Soundness: whenever `mayOverlap` says no, no generated text matches both.
    @Test func overlapIsNeverWrongOnGeneratedCases() throws {
        var random = SeededGenerator(seed: 0x6F7665_726C6170)
        let atoms = ["a", "b", ".", "*", "?", "[ab]"]
        let texts = (0..<400).map { _ in (0..<Int.random(in: 0...5, using: &random)).map { _ in random.pick(["a", "b", "."]) }.joined() }
        var disjoint = 0
        for _ in 0..<3000 {
            let a = (0..<Int.random(in: 1...4, using: &random)).map { _ in random.pick(atoms) }.joined()
            let b = (0..<Int.random(in: 1...4, using: &random)).map { _ in random.pick(atoms) }.joined()
            let (x, y) = (try Glob(a, kind: .text), try Glob(b, kind: .text))
            guard !x.mayOverlap(y) else { continue }
            disjoint += 1
            for text in texts { #expect(!(x.matches(text) && y.matches(text)), "\(a) and \(b) both match \(text)") }
        }
        #expect(disjoint > 500)
        // Paths: segments at one place, `*` inside a segment, `**` over any number of them.
        let pathSegments = ["a", "b", "*", "?", "**", "a*", "*b", "[ab]", "ab"]
        let paths = (0..<300).map { _ in
            "/" + (0..<Int.random(in: 0...4, using: &random)).map { _ in random.pick(["a", "b", "ab", "ba", "c"]) }.joined(separator: "/")
        }
        var disjointPaths = 0
        for _ in 0..<3000 {
            let a = "/" + (0..<Int.random(in: 1...3, using: &random)).map { _ in random.pick(pathSegments) }.joined(separator: "/")
            let b = "/" + (0..<Int.random(in: 1...3, using: &random)).map { _ in random.pick(pathSegments) }.joined(separator: "/")
            let (x, y) = (try Glob(a, kind: .path), try Glob(b, kind: .path))
            #expect(x.mayOverlap(y) == y.mayOverlap(x), "\(a) and \(b) overlap one way only")
            guard !x.mayOverlap(y) else { continue }
            disjointPaths += 1
            for path in paths { #expect(!(x.matches(path) && y.matches(path)), "\(a) and \(b) both match \(path)") }
        }
        #expect(disjointPaths > 500)
    }
}

@Suite struct NarrowingTests {
    static let parent: AgentPolicy = try! parse("""
        version: 1
        agent: lead
        tools:
          exec:
            - program: /usr/bin/grep
              args: { prefix: ["-[inc]", "-e", "*"], rest: ["path:/evidence/**"], max: 20 }
              env: [LANG=C.UTF-8, "LC_*"]
              cwd: [/evidence/**]
            - program: /usr/bin/*sum
              binary: /bin/busybox
              args: any
          files:
            read: [/evidence/**, /out/**]
            write: [/out/**, /tmp/*/x]
          buckets:
            - namespace: cases/**
              operations: [put, get]
            - namespace: intel/**
              operations: [query]
          doors:
            - door: findings
              send: [lead, "lead.*"]
              receive: ["lead.*"]
              max_message_bytes: 128KiB
              queue_depth: 8
              log_content: true
            - door: "chat-*"
              receive: ["*"]
        limits: { cycles: 200, wall_time: 15m, call_timeout: 30s, output_bytes: 16MiB }
        resources: { vcpus: 2, memory_mib: 1024, gpus: 1, sub_agents: 2 }
        """)

    @Test func aNarrowerChildHasNoWidenings() throws {
        let child = try parse("""
            version: 1
            agent: lead.triage
            tools:
              exec:
                - program: /usr/bin/grep
                  args: { prefix: ["-i", "-e", "secret"], rest: ["path:/evidence/case1/**"], max: 10 }
                  env: [LANG=C.UTF-8, "LC_ALL=C"]
                  cwd: [/evidence/case1/**]
                - program: /usr/bin/grep
                  args: ["-n", "-e", "x", "path:/evidence/a", "path:/evidence/b"]
                  cwd: [/evidence]
                - program: /usr/bin/sha256sum
                  binary: /bin/busybox
                  args: ["path:/evidence/a"]
              files:
                read: [/evidence/case1/**, /out/report.md]
                write: [/out/child/**, /tmp/*/x]
              buckets:
                - namespace: cases/1/findings
                  operations: [put]
                - namespace: intel/feeds/*
                  operations: [query]
              doors:
                - door: findings
                  send: [lead]
                  receive: ["lead.sub.*"]
                  max_message_bytes: 64KiB
                  queue_depth: 8
                  log_content: true
                - door: chat-ops
                  receive: [lead]
            limits: { cycles: 50, wall_time: 5m, call_timeout: 30s, output_bytes: 1MiB }
            resources: { vcpus: 1, memory_mib: 512, gpus: 0, sub_agents: 2 }
            """)
        #expect(child.widenings(over: Self.parent) == [])
        // And it is not vacuous: the other way round is wider everywhere.
        #expect(Self.parent.widenings(over: child).count >= 10)
    }

    @Test func everyPolicyIsNoWiderThanItself() throws {
        #expect(Self.parent.widenings(over: Self.parent).isEmpty)
        let folder = repositoryRoot + "/docs/policies"
        for name in try FileIO.listDirectory(folder) {
            let policy = try AgentPolicy.load(path: folder + "/" + name)
            #expect(policy.widenings(over: policy).isEmpty, "\(name)")
        }
    }

    @Test func defaultsCountAsWritten() throws {
        // deny-all's limits are the defaults: a 1m call timeout, over triage's 30s.
        let denyAll = try WorkedExampleTests.load("deny-all.yaml")
        let triage = try WorkedExampleTests.load("triage.yaml")
        #expect(denyAll.widenings(over: triage).map(\.description) == ["limits.call_timeout: call_timeout 1m is more than the parent's 30s"])
        #expect(triage.widenings(over: denyAll).count > 5)
    }

    struct Wider: Sendable, CustomTestStringConvertible {
        var tools: String
        var expected: [String]
        var testDescription: String { expected.first ?? tools }
        init(_ tools: String, _ expected: String...) {
            self.tools = tools
            self.expected = expected
        }
    }

    /// Each child is "version, agent, limits: {call_timeout: 30s}, tools:" and then `tools`,
    /// from line 5.
    static let wider: [Wider] = [
        Wider("  exec:\n    - program: /bin/*\n      args: any\n",
              "tools.exec[0] (line 6): program \"/bin/*\" is not within any of the parent's exec rules"),
        Wider("  exec:\n    - program: /usr/bin/md5sum\n      args: any\n",
              "tools.exec[0] (line 6): binary \"/usr/bin/md5sum\" is not within the parent's tools.exec[1] (line 9), which allows \"/bin/busybox\""),
        Wider("  exec:\n    - program: /usr/bin/grep\n      args: { prefix: [\"-i\", \"-e\", x], rest: [\"path:/evidence/**\"] }\n      cwd: [/evidence/**]\n",
              "tools.exec[0].args (line 7): argument count at least 3 is not within the parent's tools.exec[0] (line 5), which allows 3 to 20"),
        Wider("  exec:\n    - program: /usr/bin/grep\n      args: [\"-i\", \"-e\"]\n      cwd: [/evidence/**]\n",
              "tools.exec[0].args (line 7): argument count exactly 2 is not within the parent's tools.exec[0] (line 5), which allows 3 to 20"),
        Wider("  exec:\n    - program: /usr/bin/grep\n      args: [\"-f\", \"-e\", x]\n      cwd: [/evidence/**]\n",
              "tools.exec[0].args (line 7): argument 1 \"-f\" is not within the parent's tools.exec[0] (line 5), which allows \"-[inc]\""),
        // A text pattern is never within a path: one, even for a path it names.
        Wider("  exec:\n    - program: /usr/bin/grep\n      args: [\"-i\", \"-e\", x, /evidence/a]\n      cwd: [/evidence/**]\n",
              "tools.exec[0].args (line 7): argument 4 \"/evidence/a\" is not within the parent's tools.exec[0] (line 5), which allows \"path:/evidence/**\""),
        Wider("  exec:\n    - program: /usr/bin/grep\n      args: { prefix: [\"-i\", \"-e\", x], rest: [\"*\"], max: 5 }\n      cwd: [/evidence/**]\n",
              "tools.exec[0].args (line 7): further argument \"*\" is not within the parent's tools.exec[0] (line 5), which allows \"path:/evidence/**\""),
        Wider("  exec:\n    - program: /usr/bin/grep\n      args: [\"-i\", \"-e\", x]\n      env: [LC_ALL, LANG]\n      cwd: [/evidence/**]\n",
              "tools.exec[0].env (line 8): env \"LANG\" is not within the parent's tools.exec[0] (line 5), which allows \"LANG=C.UTF-8\", \"LC_*\""),
        Wider("  exec:\n    - program: /usr/bin/grep\n      args: [\"-i\", \"-e\", x]\n",
              "tools.exec[0].cwd (line 6): cwd \"/\" is not within the parent's tools.exec[0] (line 5), which allows \"/evidence/**\""),
        Wider("  exec:\n    - program: /usr/bin/grep\n      args: [\"-i\", \"-e\", x]\n      cwd: [/evidence/a, /tmp]\n",
              "tools.exec[0].cwd (line 8): cwd \"/tmp\" is not within the parent's tools.exec[0] (line 5), which allows \"/evidence/**\""),
        Wider("  exec:\n    - program: /usr/bin/sha256sum\n      binary: /bin/busybox\n      args: any\n      cwd: [/evidence]\n",
              "tools.exec[0].cwd (line 9): cwd \"/evidence\" is not within the parent's tools.exec[1] (line 9), which allows \"/\""),
        Wider("  files:\n    read: [/out/**, /etc/**]\n",
              "tools.files.read[1] (line 6): path \"/etc/**\" is not within any of the parent's files.read globs"),
        Wider("  files:\n    read: [/out/**]\n    write: [/evidence/x]\n",
              "tools.files.write[0] (line 7): path \"/evidence/x\" is not within any of the parent's files.write globs"),
        Wider("  files:\n    write: [/tmp/a/x]\n",
              "tools.files.write[0] (line 6): mkdir -p may create /tmp/a, which is not within any of the parent's files.write globs"),
        Wider("  buckets:\n    - namespace: cases2/**\n      operations: [put]\n    - namespace: intel/x\n      operations: [query, get]\n",
              "tools.buckets[0] (line 6): put on namespace \"cases2/**\" is not within any of the parent's bucket rules",
              "tools.buckets[1] (line 8): get on namespace \"intel/x\" is not within any of the parent's bucket rules"),
        Wider("  doors:\n    - door: \"*\"\n      receive: [lead]\n",
              "tools.doors[0] (line 6): door \"*\" is not within any of the parent's door rules"),
        Wider("  doors:\n    - door: findings\n      send: [\"*\"]\n      queue_depth: 8\n      log_content: true\n",
              "tools.doors[0] (line 6): send \"*\" is not within the parent's tools.doors[0] (line 21), which allows \"lead\", \"lead.*\""),
        Wider("  doors:\n    - door: findings\n      receive: [lead]\n      queue_depth: 8\n      log_content: true\n",
              "tools.doors[0] (line 6): receive \"lead\" is not within the parent's tools.doors[0] (line 21), which allows \"lead.*\""),
        Wider("  doors:\n    - door: chat-x\n      send: [lead]\n",
              "tools.doors[0] (line 6): send \"lead\" is not within the parent's tools.doors[1] (line 27), which allows none"),
        Wider("  doors:\n    - door: findings\n      send: [lead]\n      max_message_bytes: 256KiB\n      queue_depth: 8\n      log_content: true\n",
              "tools.doors[0] (line 6): max_message_bytes 256KiB is not within the parent's tools.doors[0] (line 21), which allows 128KiB"),
        Wider("  doors:\n    - door: findings\n      send: [lead]\n      log_content: true\n",
              "tools.doors[0] (line 6): queue_depth 16 is not within the parent's tools.doors[0] (line 21), which allows 8"),
        Wider("  doors:\n    - door: findings\n      send: [lead]\n      queue_depth: 8\n",
              "tools.doors[0] (line 6): log_content false is not within the parent's tools.doors[0] (line 21), which allows only true"),
    ]

    @Test(arguments: wider) func eachWideningIsFound(_ w: Wider) throws {
        let child = try parse("version: 1\nagent: c\nlimits: {call_timeout: 30s}\ntools:\n" + w.tools)
        #expect(child.widenings(over: Self.parent).map(\.description) == w.expected)
    }

    @Test func limitsAndResourcesMayNotGrow() throws {
        let child = try parse("""
            version: 1
            agent: c
            limits:
              cycles: 201
              wall_time: 16m
              call_timeout: 31s
              output_bytes: 32MiB
            resources:
              vcpus: 3
              memory_mib: 2048
              gpus: 2
              sub_agents: 3
            """)
        #expect(child.widenings(over: Self.parent).map(\.description) == [
            "limits.cycles (line 4): cycles 201 is more than the parent's 200",
            "limits.wall_time (line 5): wall_time 16m is more than the parent's 15m",
            "limits.call_timeout (line 6): call_timeout 31s is more than the parent's 30s",
            "limits.output_bytes (line 7): output_bytes 32MiB is more than the parent's 16MiB",
            "resources.vcpus (line 9): vcpus 3 is more than the parent's 2",
            "resources.memory_mib (line 10): memory_mib 2048 is more than the parent's 1024",
            "resources.gpus (line 11): gpus 2 is more than the parent's 1",
            "resources.sub_agents (line 12): sub_agents 3 is more than the parent's 2",
        ])
        let widening = try #require(child.widenings(over: Self.parent).first)
        #expect(widening.rule == RuleRef("limits.cycles", line: nil) && widening.rule.line == 4)
        #expect(widening.reason == "cycles 201 is more than the parent's 200")
        // The same values as the parent's are not wider.
        let same = try parse("""
            version: 1
            agent: c
            limits: { cycles: 200, wall_time: 15m, call_timeout: 30s, output_bytes: 16MiB }
            resources: { vcpus: 2, memory_mib: 1024, gpus: 1, sub_agents: 2 }
            """)
        #expect(same.widenings(over: Self.parent).isEmpty)
    }

    /// A glob that cannot match the child's paths cannot be the first to match them, so its
    /// shallower literal prefix does not count (the fuzzer's second find: `/o*/ut*` before
    /// `/tmp/*/x` made a policy wider than itself).
    @Test func aParentGlobThatCannotMatchDoesNotDecideMkdirDepth() throws {
        let policy = try parse("version: 1\nagent: c\ntools:\n  files:\n    write: [/o*/ut*, /tmp/*/x]\n")
        #expect(policy.widenings(over: policy).isEmpty)
        // One that may match still counts: /t*/a/x is first for /tmp/a/x, with no literal prefix.
        let parent = try parse("version: 1\nagent: p\ntools:\n  files:\n    write: [/t*/a/x, /tmp/*/x]\n")
        let child = try parse("version: 1\nagent: c\ntools:\n  files:\n    write: [/tmp/*/x]\n")
        #expect(child.widenings(over: parent).map(\.description) == [
            "tools.files.write[0] (line 5): mkdir -p may create /tmp, which is not within any of the parent's files.write globs",
        ])
    }

    /// The mkdir -p widening is real: the child may create /tmp/a, the parent may not.
    @Test func theMkdirWideningIsReal() throws {
        let child = try parse("version: 1\nagent: c\ntools:\n  files:\n    write: [/tmp/a/x]\n")
        let call = ToolCall.mkdir(path: "/tmp/a/x", parents: true)
        #expect(child.evaluate(call, resolver: LexicalResolver()).isAllowed)
        #expect(!Self.parent.evaluate(call, resolver: LexicalResolver()).isAllowed)
        let same = try parse("version: 1\nagent: c\nlimits: {call_timeout: 30s}\ntools:\n  files:\n    write: [/tmp/*/x, /out/a/b/**]\n")
        #expect(same.widenings(over: Self.parent).isEmpty)
    }

    /// Linux compares names as bytes: an NFC "é" and an NFD "é" are two names, so a child glob
    /// in one spelling is not within a parent glob in the other, though Swift's String calls the
    /// patterns equal.
    @Test func unicodeSpellingsAreDifferentNames() throws {
        let nfc = "/data/caf\u{E9}"
        let nfd = "/data/cafe\u{301}"
        #expect(nfc == nfd && !nfc.utf8.elementsEqual(nfd.utf8))
        #expect(try Glob(nfc, kind: .path) != Glob(nfd, kind: .path))
        for (child, parent) in [(nfc, nfd), (nfc + "/**", nfd + "/**"), (nfc + "/*", nfd + "/**")] {
            let parentPolicy = try parse("version: 1\nagent: p\ntools:\n  files:\n    read: [\"\(parent)\"]\n")
            let childPolicy = try parse("version: 1\nagent: c\ntools:\n  files:\n    read: [\"\(child)\"]\n")
            #expect(childPolicy.widenings(over: parentPolicy).map(\.description) == [
                "tools.files.read[0] (line 5): path \"\(child)\" is not within any of the parent's files.read globs",
            ])
            // The widening is real: the child may read a file the parent may not.
            let file = child.hasSuffix("*") ? nfc + "/x" : nfc
            #expect(childPolicy.evaluate(.readFile(path: file), resolver: LexicalResolver()).isAllowed)
            #expect(!parentPolicy.evaluate(.readFile(path: file), resolver: LexicalResolver()).isAllowed)
        }
        let namespaceParent = try parse("version: 1\nagent: p\ntools:\n  buckets:\n    - namespace: \"cafe\u{301}/**\"\n      operations: [get]\n")
        let namespaceChild = try parse("version: 1\nagent: c\ntools:\n  buckets:\n    - namespace: \"caf\u{E9}/x/*\"\n      operations: [get]\n")
        #expect(namespaceChild.widenings(over: namespaceParent).count == 1)
        // The same spelling on both sides is within.
        let same = try parse("version: 1\nagent: c\ntools:\n  files:\n    read: [\"\(nfd)/*\"]\n")
        #expect(same.widenings(over: try parse("version: 1\nagent: p\ntools:\n  files:\n    read: [\"\(nfd)/**\"]\n")).isEmpty)
    }

    /// The evaluator applies the parent's first matching door rule, so a wide rule after a strict
    /// one does not cover what the strict one bounds (max_message_bytes, queue_depth, log_content).
    @Test func doorRulesNarrowByTheRuleThatApplies() throws {
        let parent = try parse("""
            version: 1
            agent: lead
            tools:
              doors:
                - door: reports
                  send: [boss]
                  receive: [boss]
                  max_message_bytes: 4KiB
                  queue_depth: 4
                  log_content: true
                - door: "*"
                  send: ["*"]
                  receive: ["*"]
                  max_message_bytes: 1MiB
            """)
        #expect(parent.doorRule(door: "reports", sendingTo: "boss")?.maxMessageBytes == 4 << 10)
        func child(_ door: String, _ peer: String, direction: String = "send", _ bounds: String...) throws -> [String] {
            let rule = "    - door: \"\(door)\"\n      \(direction): [\"\(peer)\"]\n" + bounds.map { "      \($0)\n" }.joined()
            return try parse("version: 1\nagent: c\ntools:\n  doors:\n" + rule).widenings(over: parent).map(\.description)
        }
        func beyond(_ what: String, _ allowed: String) -> [String] {
            ["tools.doors[0] (line 5): \(what) is not within the parent's tools.doors[0] (line 5), which allows \(allowed)"]
        }
        #expect(try child("reports", "boss", "max_message_bytes: 1MiB") == beyond("max_message_bytes 1MiB", "4KiB"))
        #expect(try child("reports", "boss", direction: "receive", "max_message_bytes: 1MiB") == beyond("max_message_bytes 1MiB", "4KiB"))
        // Deeper, or unlogged, on the strict rule's pairs.
        #expect(try child("reports", "boss", "max_message_bytes: 4KiB") == beyond("queue_depth 16", "4"))
        #expect(try child("reports", "boss", "max_message_bytes: 4KiB", "queue_depth: 4") == beyond("log_content false", "only true"))
        // A wide child rule reaches the strict rule's pairs too.
        #expect(try child("*", "boss", "max_message_bytes: 1MiB") == beyond("max_message_bytes 1MiB", "4KiB"))
        #expect(try child("rep*", "*", "max_message_bytes: 1MiB") == beyond("max_message_bytes 1MiB", "4KiB"))
        // Pairs the strict rule cannot meet are judged by the wide one alone.
        #expect(try child("alerts", "boss", "max_message_bytes: 1MiB") == [])
        #expect(try child("reports", "auditor", "max_message_bytes: 1MiB") == [])
        #expect(try child("rap*", "b*", "max_message_bytes: 1MiB") == [])
        // A policy is no wider than itself: the child's own strict rule takes (reports, boss)
        // before its wide one, as the parent's does (the fuzzer's first find). In the other
        // order the child's wide rule applies there, with its 1 MiB: a widening.
        #expect(parent.widenings(over: parent).isEmpty)
        let reversed = try parse("""
            version: 1
            agent: c
            tools:
              doors:
                - door: "*"
                  send: ["*"]
                  receive: ["*"]
                  max_message_bytes: 1MiB
                - door: reports
                  send: [boss]
                  receive: [boss]
                  max_message_bytes: 4KiB
                  queue_depth: 4
                  log_content: true
            """)
        #expect(reversed.widenings(over: parent).map(\.description) == [
            "tools.doors[0] (line 5): max_message_bytes 1MiB is not within the parent's tools.doors[0] (line 5), which allows 4KiB",
        ])
        // And the strict rule's own bounds are within it.
        let within = try parse("""
            version: 1
            agent: c
            tools:
              doors:
                - door: reports
                  send: [boss]
                  max_message_bytes: 4KiB
                  queue_depth: 4
                  log_content: true
            """)
        #expect(within.widenings(over: parent).isEmpty)
    }

    /// A child rule needs one parent rule that covers it all; for buckets, one per operation.
    @Test func coverageIsByOneRule() throws {
        let parent = try parse("""
            version: 1
            agent: p
            tools:
              exec:
                - program: /usr/bin/grep
                  args: any
                - program: /usr/bin/grep
                  args: any
                  env: [LANG]
              buckets:
                - namespace: "**"
                  operations: [query]
                - namespace: cases/**
                  operations: [put]
            """)
        let child = try parse("""
            version: 1
            agent: c
            tools:
              exec:
                - program: /usr/bin/grep
                  args: [-n]
                  env: [LANG=C]
              buckets:
                - namespace: cases/1
                  operations: [put, query]
            """)
        #expect(child.widenings(over: parent).isEmpty)
        // No single parent rule has both LANG and LC_ALL: reported against the first candidate.
        let both = try parse("version: 1\nagent: c\ntools:\n  exec:\n    - program: /usr/bin/grep\n      env: [LANG, LC_ALL]\n")
        #expect(both.widenings(over: parent).map(\.description) == [
            "tools.exec[0].env (line 6): env \"LANG\" is not within the parent's tools.exec[0] (line 5), which allows none",
        ])
    }
}

/// Doors inside the parent's own subtree: a child reporting back to its parent.
@Suite struct SubtreeDoorTests {
    static let parent = """
        version: 1
        agent: lead
        tools:
          doors:
            - door: findings
              receive: ["lead.*"]
        """

    func child(_ send: String, door: String = "findings") throws -> AgentPolicy {
        try AgentPolicy.parse("version: 1\nagent: worker\ntools:\n  doors:\n    - door: \(door)\n      send: [\(send)]\n",
                              format: .yaml, file: "child.yaml")
    }

    @Test func aChildMaySendToItsParentAndSiblingsOnlyWhenTheSubtreeIsKnown() throws {
        let parent = try AgentPolicy.parse(Self.parent, format: .yaml, file: "lead.yaml")
        // Without the parent's name the send side is not covered: the parent has none.
        #expect(!(try child("lead")).widenings(over: parent).isEmpty)
        #expect((try child("lead")).widenings(over: parent, subtree: "lead").isEmpty)
        #expect((try child("\"lead.*\"")).widenings(over: parent, subtree: "lead").isEmpty)
        // Outside the subtree, or on a door the parent lacks, it is still a widening.
        #expect(!(try child("boss")).widenings(over: parent, subtree: "lead").isEmpty)
        #expect(!(try child("\"*\"")).widenings(over: parent, subtree: "lead").isEmpty)
        #expect(!(try child("lead", door: "other")).widenings(over: parent, subtree: "lead").isEmpty)
    }
}
