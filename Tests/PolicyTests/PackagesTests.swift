import Policy
import Testing

/// `packages`: which pip and apt packages an install may bring in, by name glob and (pip) PEP 440
/// versions, and how a sub-agent's rules narrow its parent's.
@Suite struct PackagesTests {
    static let yaml = """
        version: 1
        agent: triage
        packages:
          pip:
            index: https://pypi.org/simple
            allow:
              - name: pefile
                versions: ">=2023.2.7,<2025"
              - name: Yara_Python
              - "python-*"
          apt:
            mirrors: [http://deb.debian.org/debian]
            allow: [binwalk, "python3-*"]
        """

    static let policy: AgentPolicy = try! parse(yaml)

    static func judge(_ ecosystem: PackageEcosystem, _ name: String, _ version: String = "", _ policy: AgentPolicy = policy) -> Decision {
        policy.evaluate(.installPackage(ecosystem: ecosystem, name: name, version: version), resolver: LexicalResolver())
    }

    @Test func everyPackagesFieldIsRead() throws {
        let pip = try #require(Self.policy.packages?.pip)
        #expect(pip.index.description == "https://pypi.org/simple" && pip.rule == RuleRef("packages.pip", line: 4))
        // Names and name globs are compared in PEP 503's normal form.
        #expect(pip.allow.map(\.name.pattern) == ["pefile", "yara-python", "python-*"])
        #expect(pip.allow.map { $0.versions?.description } == [">=2023.2.7,<2025", nil, nil])
        #expect(pip.allow[0].rule == RuleRef("packages.pip.allow[0]", line: 7) && pip.allow[0].rule.line == 7)
        let apt = try #require(Self.policy.packages?.apt)
        #expect(apt.mirrors.map(\.description) == ["http://deb.debian.org/debian"] && apt.allow.map(\.name.pattern) == ["binwalk", "python3-*"])
        let json = try parse(#"{"version": 1, "agent": "triage", "packages": {"pip": {"index": "https://pypi.org/simple", "allow": [{"name": "pefile", "versions": ">=2023.2.7,<2025"}, {"name": "Yara_Python"}, "python-*"]}, "apt": {"mirrors": ["http://deb.debian.org/debian"], "allow": ["binwalk", "python3-*"]}}}"#, .json)
        #expect(json == Self.policy)
        #expect(try parse("version: 1\nagent: a\n").packages == nil)
    }

    @Test func badPackagesSectionsNameTheirField() {
        let cases: [(String, String, String)] = [
            ("pip:\n    allow: [x]", "packages.pip.index", "missing"),
            ("pip:\n    index: https://pypi.org/simple", "packages.pip.allow", "missing"),
            ("pip:\n    index: https://pypi.org/simple\n    allow: []", "packages.pip.allow", "allows no package"),
            ("pip:\n    index: ftp://pypi.org/simple\n    allow: [x]", "packages.pip.index", "must start with https:// or http://"),
            ("pip:\n    index: https://pypi.org/simple\n    allow: [\"a b\"]", "packages.pip.allow[0]", "not a name glob for pip packages"),
            ("pip:\n    index: https://pypi.org/simple\n    allow: [{name: x, versions: \">=1.0,<<2\"}]", "packages.pip.allow[0].versions",
             "not a PEP 440 specifier set"),
            ("pip:\n    index: https://pypi.org/simple\n    allow: [{versions: \">=1\"}]", "packages.pip.allow[0].name", "missing"),
            ("pip:\n    index: https://pypi.org/simple\n    allow: [{name: x, version: \"1\"}]", "packages.pip.allow[0].version", "unknown key"),
            ("apt:\n    allow: [x]", "packages.apt.mirrors", "missing"),
            ("apt:\n    mirrors: []\n    allow: [xy]", "packages.apt.mirrors", "reaches no mirror"),
            ("apt:\n    mirrors: [http://deb.debian.org/debian]\n    allow: [Binwalk]", "packages.apt.allow[0]", "not a name glob for apt packages"),
            ("apt:\n    mirrors: [http://deb.debian.org/debian]\n    allow: [{name: xy, versions: \"1\"}]", "packages.apt.allow[0].versions",
             "unknown key"),
            ("npm: {}", "packages.npm", "unknown key"),
        ]
        expectFieldErrors("version: 1\nagent: a\npackages:\n  ", cases)
    }

    @Test func pipPackagesAreJudgedByNormalisedNameAndVersion() throws {
        let pip = try #require(Self.policy.packages?.pip)
        #expect(Self.judge(.pip, "pefile", "2024.8.26") == .allow(pip.allow[0].rule))
        #expect(Self.judge(.pip, "PEfile", "2023.2.7").isAllowed)  // names compare normalised
        #expect(Self.judge(.pip, "yara.python", "4.5.1") == .allow(pip.allow[1].rule))
        #expect(Self.judge(.pip, "python-magic", "0.4.27") == .allow(pip.allow[2].rule))
        #expect(Self.judge(.pip, "pefile", "2022.5.30")
            == .deny(pip.allow[0].rule, .packageVersionNotAllowed(name: "pefile", version: "2022.5.30", allowed: ">=2023.2.7,<2025")))
        #expect(Self.judge(.pip, "pefile", "2022.5.30").reason == "pefile 2022.5.30 is not among the versions allowed (>=2023.2.7,<2025)")
        // A pre-release only where the rule names one (PEP 440): >=2023.2.7 does not admit 2024.1rc1.
        #expect(!Self.judge(.pip, "pefile", "2024.1rc1").isAllowed)
        #expect(Self.judge(.pip, "requests", "2.32.3") == .deny(pip.rule, .packageNotAllowed(ecosystem: .pip, name: "requests")))
        #expect(Self.judge(.pip, "requests", "2.32.3").reason == "pip package \"requests\" is not among packages.pip.allow")
        let badVersion = Self.judge(.pip, "pefile", "not a version")
        #expect(!badVersion.isAllowed && badVersion.rule == pip.allow[0].rule && badVersion.reason.hasPrefix("pefile version \"not a version\": "))
        #expect(!Self.judge(.pip, "../evil", "1.0").isAllowed && !Self.judge(.pip, "", "1.0").isAllowed)
        #expect(Self.judge(.pip, "pefile", "2024.8.26", try parse("version: 1\nagent: a\n")) == .deny(.defaultDeny, .nothingAllowed("pip packages")))
    }

    @Test func aptPackagesAreJudgedByName() throws {
        let apt = try #require(Self.policy.packages?.apt)
        #expect(Self.judge(.apt, "binwalk") == .allow(apt.allow[0].rule))
        #expect(Self.judge(.apt, "python3-pefile") == .allow(apt.allow[1].rule))
        #expect(Self.judge(.apt, "nmap") == .deny(apt.rule, .packageNotAllowed(ecosystem: .apt, name: "nmap")))
        #expect(Self.judge(.apt, "Binwalk").why == .malformedCall("\"Binwalk\" is not a valid name for apt packages"))
        #expect(!Self.judge(.apt, "-x").isAllowed && !Self.judge(.apt, "a/b").isAllowed)
        #expect(Self.judge(.apt, "binwalk", "", try parse("version: 1\nagent: a\n")) == .deny(.defaultDeny, .nothingAllowed("apt packages")))
    }

    static func child(_ packages: String) throws -> AgentPolicy { try parse("version: 1\nagent: child\npackages:\n" + packages) }

    @Test func aSubAgentsPackageRulesMustLieWithinItsParents() throws {
        let index = "  pip:\n    index: https://pypi.org/simple\n    allow:\n"
        // Narrower: a name within a parent glob, and the parent's versions kept with more.
        let narrower = try Self.child(index + "      - python-magic\n      - {name: pefile, versions: \">=2023.2.7,<2025,!=2024.1.5\"}\n")
        #expect(narrower.widenings(over: Self.policy).isEmpty)
        // Wider: a name outside, the versions dropped, another index, no parent section.
        let wider = try Self.child(index + "      - requests\n      - pefile\n")
        #expect(wider.widenings(over: Self.policy).map(\.reason) == [
            "name \"requests\" is not within any of the parent's packages.pip.allow",
            "versions any version do not keep the parent's packages.pip.allow[0] (line 7) \">=2023.2.7,<2025\"",
        ])
        let elsewhere = try Self.child("  pip:\n    index: https://mirror.example/simple\n    allow: [pefile-x]\n")
        #expect(elsewhere.widenings(over: Self.policy).map(\.reason).first == "index https://mirror.example/simple is not the parent's https://pypi.org/simple")
        let noParent = try Self.child(index + "      - pefile\n")
        #expect(noParent.widenings(over: try parse("version: 1\nagent: a\n")).map(\.reason)
            == ["the parent allows no pip packages (it has no packages.pip section)"])
        // The parent's first matching rule decides: a child rule that a later, wider parent rule
        // covers must still keep the versions of an earlier one that meets its names.
        let parent = try Self.child(index + "      - {name: pefile, versions: \"<2\"}\n      - \"*\"\n")
        #expect(try Self.child(index + "      - \"pe*\"\n").widenings(over: parent).map(\.reason)
            == ["versions any version do not keep the parent's packages.pip.allow[0] (line 7) \"<2\""])
        #expect(try Self.child(index + "      - {name: \"pe*\", versions: \"<2\"}\n").widenings(over: parent).isEmpty)
        // apt: mirrors among the parent's, names within.
        let apt = try Self.child("  apt:\n    mirrors: [http://other.example/debian]\n    allow: [nmap]\n")
        #expect(apt.widenings(over: Self.policy).map(\.reason) == [
            "mirror http://other.example/debian is not among the parent's packages.apt.mirrors",
            "name \"nmap\" is not within any of the parent's packages.apt.allow",
        ])
    }

    /// Plain HTTP under an apt mirror is judged by packages.apt, not network.egress (which this
    /// policy does not have): the archive's indexes by the section, each pool `.deb` by its name.
    @Test func requestsUnderAnAptMirrorAreJudgedByThePackageRules() throws {
        let policy = try parse("""
            version: 1
            agent: triage
            packages:
              apt:
                mirrors: [http://deb.debian.org/debian, "http://127.0.0.1:8080/"]
                allow: [binwalk, "python3-*"]
            """)
        let public1 = try IPAddress.parse("151.101.2.132").get(), private1 = try IPAddress.parse("10.0.0.7").get()
        func judge(_ host: String, _ path: String, method: String = "GET", port: UInt16 = 80, resolved: [IPAddress]? = nil) -> Decision {
            policy.evaluate(.httpRequest(host: host, port: port, method: method, path: path, resolved: resolved ?? [public1]),
                            resolver: LexicalResolver())
        }
        let index = judge("deb.debian.org", "/debian/dists/bookworm/InRelease")
        #expect(index.isAllowed && index.rule.id == "packages.apt" && index.judged == .addresses([public1]))
        let deb = judge("deb.debian.org", "/debian/pool/main/b/binwalk/binwalk_2.3.4%2bdfsg1-1_all.deb", method: "HEAD")
        #expect(deb.isAllowed && deb.rule.id == "packages.apt.allow[0]")
        #expect(policy.aptPoolFile(host: "deb.debian.org", port: 80, path: "/debian/pool/main/b/binwalk/binwalk_2.3.4%2bdfsg1-1_all.deb")
            .map { "\($0.name) \($0.file)" } == "binwalk binwalk_2.3.4%2bdfsg1-1_all.deb")
        #expect(judge("deb.debian.org", "/debian/pool/main/n/nmap/nmap_7.93_amd64.deb").reason
            == "apt package \"nmap\" is not among packages.apt.allow")
        #expect(judge("deb.debian.org", "/debian/pool/main/b/binwalk/binwalk_2.3.4.dsc").reason.contains("is not a package file"))
        #expect(judge("deb.debian.org", "/debian/dists/bookworm/InRelease", method: "POST").rule.id == "packages.apt")
        #expect(!judge("deb.debian.org", "/debian/dists/bookworm/InRelease", method: "POST").isAllowed)
        // A name must resolve, to public addresses; an address literal is itself.
        #expect(judge("deb.debian.org", "/debian/dists/x", resolved: []).reason.contains("resolve"))
        #expect(!judge("deb.debian.org", "/debian/dists/x", resolved: [private1]).isAllowed)
        #expect(judge("127.0.0.1", "/dists/momin/InRelease", port: 8080, resolved: []).judged == .addresses([try IPAddress.parse("127.0.0.1").get()]))
        // Beside a mirror is not in it: another path, port or host goes to network.egress.
        for (host, path, port) in [("deb.debian.org", "/debian-security/dists/x", UInt16(80)), ("deb.debian.org", "/debian/pool/x_1_all.deb", 8080),
                                   ("ftp.debian.org", "/debian/pool/main/b/binwalk/binwalk_1_all.deb", 80)] {
            #expect(judge(host, path, port: port).reason.contains("network egress"), "\(host):\(port)\(path)")
        }
        #expect(policy.aptPoolFile(host: "deb.debian.org", port: 80, path: "/debian/dists/bookworm/Release") == nil)
    }
}
