import Policy
import Testing

/// `resources.disks`: which host files an agent may have attached as disks, judged on the host
/// before boot, and narrowed for sub-agents like every other rule.
@Suite struct DiskRuleTests {
    static let yaml = """
        version: 1
        agent: triage
        resources:
          disks:
            - path: /srv/cases/*/evidence.img
            - path: /srv/scratch/**
              mode: rw
            - path: /srv/images/*.ext4
              mode: ro
        """

    static let policy: AgentPolicy = try! parse(yaml)

    static let files: FakeFileSystem = {
        var fs = FakeFileSystem()
        fs.add("/srv/cases/7/evidence.img", .file)
        fs.add("/srv/scratch/a.img", .file)
        fs.add("/srv/images/debian.ext4", .file)
        // A link in an allowed place that leads somewhere else.
        fs.add("/srv/cases/8/evidence.img", .symlink("/etc/shadow"))
        // A link that stays inside what is allowed.
        fs.add("/srv/scratch/latest.img", .symlink("a.img"))
        return fs
    }()

    static func judge(_ path: String, writable: Bool, _ policy: AgentPolicy = policy) -> Decision {
        policy.evaluate(.attachDisk(path: path, writable: writable), resolver: files)
    }

    @Test func everyDiskFieldIsRead() throws {
        let disks = Self.policy.resources.disks
        #expect(disks.map(\.glob.pattern) == ["/srv/cases/*/evidence.img", "/srv/scratch/**", "/srv/images/*.ext4"])
        #expect(disks.map(\.writable) == [false, true, false])
        #expect(disks.map(\.rule.id) == ["resources.disks[0]", "resources.disks[1]", "resources.disks[2]"])
        #expect(disks.map(\.rule.line) == [5, 6, 8])
        #expect(Self.policy.resources.rules.diskList?.line == 4)
        let json = try parse(#"{"version": 1, "agent": "triage", "resources": {"disks": [{"path": "/srv/cases/*/evidence.img"}, {"path": "/srv/scratch/**", "mode": "rw"}, {"path": "/srv/images/*.ext4", "mode": "ro"}]}}"#, .json)
        #expect(json.resources == Self.policy.resources)
    }

    @Test func badDiskRulesNameTheirField() {
        let cases: [(String, String, String)] = [
            ("- path: /x\n      mode: wo", "resources.disks[0].mode", #"expected ro or rw, found "wo""#),
            ("- mode: rw", "resources.disks[0]", "a disk rule needs a path"),
            ("- path: /x\n      size: 1", "resources.disks[0].size", "unknown key"),
            ("- path: relative/x", "resources.disks[0].path", "not a valid glob"),
            ("/x", "resources.disks", "expected a list"),
        ]
        expectFieldErrors("version: 1\nagent: a\nresources:\n  disks:\n    ", cases)
    }

    @Test func aDiskIsAllowedByTheFirstRuleThatAllowsItsMode() {
        #expect(Self.judge("/srv/cases/7/evidence.img", writable: false) == .allow(Self.policy.resources.disks[0].rule, judged: .file("/srv/cases/7/evidence.img")))
        #expect(Self.judge("/srv/scratch/a.img", writable: true).verdict == .allow)
        #expect(Self.judge("/srv/scratch/a.img", writable: false).verdict == .allow)
        #expect(Self.judge("/srv/images/debian.ext4", writable: false).verdict == .allow)
        // The judged path is the resolved one: that is the file the host attaches.
        #expect(Self.judge("/srv/scratch/latest.img", writable: true) == .allow(Self.policy.resources.disks[1].rule, judged: .file("/srv/scratch/a.img")))
    }

    @Test func readOnlyRulesRefuseRWAndOtherPathsAreRefused() {
        let list = Self.policy.resources.rules.diskList!
        #expect(Self.judge("/srv/cases/7/evidence.img", writable: true) == .deny(list, .diskNotAllowed(path: "/srv/cases/7/evidence.img", writable: true)))
        #expect(Self.judge("/srv/images/debian.ext4", writable: true).verdict == .deny)
        #expect(Self.judge("/etc/shadow", writable: false) == .deny(list, .diskNotAllowed(path: "/etc/shadow", writable: false)))
        #expect(Self.judge("/srv/cases/7/../../scratch/a.img", writable: true).verdict == .allow)  // normalised first
        #expect(Self.judge("srv/cases/7/evidence.img", writable: false).verdict == .deny)
        #expect(Self.judge("/srv/cases/7/evidence.img", writable: false, try! parse("version: 1\nagent: a\n"))
                == .deny(.defaultDeny, .nothingAllowed("disks")))
    }

    @Test func aSymlinkOutOfTheAllowedPlacesIsRefused() {
        let decision = Self.judge("/srv/cases/8/evidence.img", writable: false)
        #expect(decision == .deny(Self.policy.resources.disks[0].rule,
                                  .resolvesOutside(path: "/srv/cases/8/evidence.img", canonical: "/etc/shadow", access: "attachable")))
        #expect(decision.description.contains("/etc/shadow"))
    }

    @Test func aChildMayNarrowItsDisksButNeverWidenThem() throws {
        let child = { (rules: String) throws -> [Widening] in
            try parse("version: 1\nagent: triage.a\nresources:\n  disks:\n\(rules)").widenings(over: Self.policy)
        }
        #expect(try child("    - path: /srv/cases/7/evidence.img\n").isEmpty)
        #expect(try child("    - path: /srv/scratch/a/**\n      mode: rw\n").isEmpty)
        #expect(try child("    - path: /srv/scratch/a.img\n").isEmpty)
        let rw = try child("    - path: /srv/cases/7/evidence.img\n      mode: rw\n")
        #expect(rw.map(\.rule.id) == ["resources.disks[0]"])
        #expect(rw.first?.reason == #"disk path "/srv/cases/7/evidence.img" is not within any of the parent's resources.disks with mode rw"#)
        let elsewhere = try child("    - path: /srv/**\n")
        #expect(elsewhere.first?.reason == #"disk path "/srv/**" is not within any of the parent's resources.disks"#)
        // A child with no disk rules has none; a parent with none gives none.
        #expect(try parse("version: 1\nagent: triage.a\n").widenings(over: Self.policy).isEmpty)
        #expect(try !Self.policy.widenings(over: parse("version: 1\nagent: root\nresources: {sub_agents: 1}\n")).isEmpty)
    }

    static let capped: AgentPolicy = try! parse("""
        version: 1
        agent: examiner
        resources:
          disks:
            - path: /srv/cases/**
              bps: 1048576
              iops: 100
            - path: /srv/scratch/**
              mode: rw
        """)

    @Test func aRuleMayCapTheDisksRates() throws {
        let rules = Self.capped.resources.disks
        #expect(rules.map(\.bytesPerSecond) == [1_048_576, nil] && rules.map(\.operationsPerSecond) == [100, nil])
        let decision = Self.judge("/srv/cases/7/evidence.img", writable: false, Self.capped)
        #expect(Self.capped.diskRule(for: decision) == rules[0])
        #expect(Self.capped.diskRule(for: Self.judge("/etc/shadow", writable: false, Self.capped)) == nil)
        for (value, message) in [("0", "must be at least 1, not 0"), ("-5", "must be at least 1, not -5"), ("fast", "expected a whole number")] {
            let error = parseError("version: 1\nagent: a\nresources:\n  disks:\n    - path: /x\n      bps: \(value)\n")
            #expect(error?.field == "resources.disks[0].bps", "\(value)")
            #expect(error?.message.contains(message) == true, "\(value): \(String(describing: error))")
        }
    }

    @Test func aChildMayNotReadFasterThanItsParentsCap() throws {
        let child = { (rules: String) throws -> [Widening] in
            try parse("version: 1\nagent: examiner.a\nresources:\n  disks:\n\(rules)").widenings(over: Self.capped)
        }
        #expect(try child("    - path: /srv/cases/7/*.img\n      bps: 4096\n      iops: 100\n").isEmpty)
        let uncapped = try child("    - path: /srv/cases/7/*.img\n")
        #expect(uncapped.first?.reason == #"disk path "/srv/cases/7/*.img" may be read or written faster than the parent's resources.disks allow (bps, iops)"#)
        #expect(try child("    - path: /srv/cases/7/*.img\n      bps: 1048576\n      iops: 101\n").count == 1)
        // Under a rule with no caps, a child's caps are its own business.
        #expect(try child("    - path: /srv/scratch/x.img\n      mode: rw\n      bps: 9999999\n").isEmpty)
    }
}
