import PackageIndex
import Testing

/// PEP 440 version specifiers: the spec's examples for each operator, pre-release handling, refusals and bounds.
@Suite struct SpecifierTests {
    func admits(_ specifier: String, _ candidate: String) throws -> Bool {
        try Specifier(parsing: specifier).admits(Version(parsing: candidate))
    }

    func set(_ text: String) throws -> SpecifierSet { try SpecifierSet(parsing: text) }

    /// "Compatible release": `~=2.2` is `>=2.2, ==2.*`; `~=1.4.5` is `>=1.4.5, ==1.4.*`; the
    /// suffixes of V only move the lower bound.
    @Test func compatibleRelease() throws {
        for candidate in ["2.2", "2.3", "2.9.1", "2.2.post1"] { #expect(try admits("~=2.2", candidate), "\(candidate)") }
        for candidate in ["3.0", "2.1", "1.9", "3.0.dev0"] { #expect(try !admits("~=2.2", candidate), "\(candidate)") }
        #expect(try admits("~=1.4.5", "1.4.5") && admits("~=1.4.5", "1.4.9") && !admits("~=1.4.5", "1.5.0") && !admits("~=1.4.5", "1.4.4"))
        #expect(try admits("~=2.2.post3", "2.2.post3") && admits("~=2.2.post3", "2.3") && !admits("~=2.2.post3", "2.2"))
        #expect(try admits("~=1.4.5a4", "1.4.5a4") && admits("~=1.4.5a4", "1.4.5") && !admits("~=1.4.5a4", "1.5") && !admits("~=1.4.5a4", "1.4.5a3"))
        #expect(try admits("~=1!2.0", "1!2.5") && !admits("~=1!2.0", "2.5"))
        #expect(try admits("~= 2.2", "2.2+local"))
    }

    /// "Version matching" and "Version exclusion", with the spec's `1.1.post1` example.
    @Test func matchingAndExclusion() throws {
        #expect(try !admits("==1.1", "1.1.post1") && admits("==1.1.post1", "1.1.post1") && admits("==1.1.*", "1.1.post1"))
        #expect(try admits("!=1.1", "1.1.post1") && !admits("!=1.1.post1", "1.1.post1") && !admits("!=1.1.*", "1.1.post1"))
        // Zero padding: 1.1 is 1.1.0; a prefix pads the candidate.
        #expect(try admits("==1.1", "1.1.0") && admits("==1.1.0", "1.1") && admits("==1.1.0.*", "1.1") && admits("==1.*", "1.0a1"))
        #expect(try !admits("==1.1.*", "1.10") && !admits("==1.1.*", "1.2") && admits("==1.1.*", "1.1.9.9") && !admits("==1.*", "1!1.0"))
        // A public V ignores the candidate's local label; a local V matches it exactly.
        #expect(try admits("==1.0", "1.0+ubuntu.1") && !admits("==1.0+ubuntu.1", "1.0") && admits("==1.0+Ubuntu-1", "1.0+ubuntu.1"))
        #expect(try !admits("!=1.0", "1.0+x") && admits("!=1.0+x", "1.0"))
    }

    /// "Inclusive ordered comparison" and "Exclusive ordered comparison" with its pre-, post-
    /// and local-release rules.
    @Test func orderedComparisons() throws {
        #expect(try admits("<=1.0", "1.0") && admits("<=1.0", "1.0+local") && !admits("<=1.0", "1.0.post1") && admits(">=1.0", "1.0.0"))
        #expect(try admits(">1.7", "1.7.1") && !admits(">1.7", "1.7.0.post1") && !admits(">1.7", "1.7+local") && !admits(">1.7", "1.7"))
        #expect(try admits(">1.7.post2", "1.7.1") && admits(">1.7.post2", "1.7.post3") && !admits(">1.7.post2", "1.7.post2"))
        #expect(try !admits("<1.7", "1.7.0rc1") && !admits("<1.7", "1.7.dev0") && admits("<1.7", "1.6") && admits("<1.7", "1.7a0") == false)
        #expect(try admits("<1.7rc2", "1.7rc1") && admits("<1.7", "1.6.9rc1") && !admits("<1.7", "1.7"))
        // "Of the specified version": a post-release of 2.0 is not one of 2.0rc1, nor a local
        // version of 2.0 one of 2.0rc1; 1.0a1 is not a pre-release of 1.0.post1 (those start at 1.0.post1.dev0).
        #expect(try admits(">2.0rc1", "2.0.post1") && admits(">2.0rc1", "2.0+a") && !admits(">2.0rc1", "2.0rc1+a"))
        #expect(try admits(">1.0.dev0", "1.0.post1") && admits(">1.0.dev0", "1.0b2.post3") && admits(">1.0.dev0", "1.0+local.7"))
        #expect(try admits(">1.0a1", "1.0a2+local") && !admits(">1.0a1", "1.0a1.post1") && admits(">1.0a1.post1", "1.0a1.post2"))
        #expect(try admits("<1.0.post1", "1.0a1") && admits("<1.0.post1", "1.0.dev0") && !admits("<1.0.post1", "1.0.post1.dev0"))
        #expect(try admits("===1.0", "1.0") && !admits("===1.0", "1.0.0") && admits("===1.0+LOCAL", "1.0+local"))
        #expect(try Specifier(parsing: "===foobar").version == nil && !admits("===foobar", "1.0"))
    }

    /// "Handling of pre-releases": left out unless asked for or named; `filter` falls back to
    /// them when nothing else satisfies.
    @Test func prereleaseHandling() throws {
        let plain = try set(">=1.0")
        #expect(try !plain.contains(version("2.0a1"), prereleases: false) && plain.contains(version("2.0a1"), prereleases: true))
        #expect(try !plain.contains(version("2.0.dev1"), prereleases: false) && plain.contains(version("2.0.post1"), prereleases: false))
        let named = try set(">=1.0a1")
        #expect(try named.namesPrerelease && named.contains(version("2.0b1"), prereleases: false))
        #expect(try !set("!=1.0a1").namesPrerelease && set("==1.0.*").namesPrerelease == false && set("<2.0.dev1").namesPrerelease)
        let versions = try ["0.9", "1.0", "1.6a1", "2.0b1"].map(version)
        #expect(try set(">=1.5").filter(versions).map(\.description) == ["1.6a1", "2.0b1"])
        #expect(try set(">=1.5").filter(versions, prereleases: false).isEmpty)
        #expect(try set(">=0.5").filter(versions).map(\.description) == ["0.9", "1.0"])
        #expect(try set(">=0.5").filter(versions, prereleases: true).count == 4)
        #expect(try set("").filter(versions).count == 2 && set("  ").contains(version("0.1"), prereleases: false))
    }

    @Test func setsParseWithWhitespaceAndReadBack() throws {
        let parsed = try set("  >= 1.0 ,<2,  !=1.5.*,~=1.1 , ===odd ")
        #expect(parsed.specifiers.map(\.op) == [.greaterOrEqual, .less, .notEqual, .compatible, .arbitrary])
        #expect(parsed.description == ">=1.0,<2,!=1.5.*,~=1.1,===odd")
        #expect(try set(parsed.description) == parsed)
        #expect(try set("==v1.0.0RC1").description == "==1.0.0rc1")
        #expect(try set(">=1.0,<2").contains(version("1.9"), prereleases: false) && !set(">=1.0,<2").contains(version("2.0"), prereleases: false))
    }

    @Test(arguments: [
        ("=>1.0", "does not start with ~=, ==, !=, <=, >=, <, > or ==="), (">=", "no version after >="), ("1.0", "does not start with"),
        (">=1.0+local", "a local version is not allowed in an ordered comparison"), ("~=1.0+local", "a local version is not allowed"),
        ("==1.0a1.*", "a prefix match (.*) names only an epoch and a release"), ("!=1.0+x.*", "a prefix match"),
        ("~=1", "at least two release segments"), (">=1.0,,<2", "an empty clause"), (">=1.0,", "an empty clause"),
        (">= 1.0 x", "has spaces"), (">=1.0;", "semicolons"), ("==1.*.*", "after ==: \"1.*\" is not a PEP 440 version"),
        ("<1.x", "after <: \"1.x\" is not a PEP 440 version"),
    ])
    func refusalsNameWhatIsWrong(_ text: String, _ reason: String) {
        expectRefused(reason) { try SpecifierSet(parsing: text) }
        expectRefused("version specifier: ") { try SpecifierSet(parsing: text) }
    }

    @Test func boundsAreCheckedBeforeParsing() throws {
        let clauses = { (count: Int) in Array(repeating: ">=1", count: count).joined(separator: ",") }
        #expect(try set(clauses(32)).specifiers.count == 32)
        expectRefused("more than 32 clauses") { try SpecifierSet(parsing: clauses(33)) }
        // 1025 bytes of nonsense: the length is what is reported.
        expectRefused("longer than 1024 bytes") { try SpecifierSet(parsing: String(repeating: "x", count: 1025)) }
        expectRefused("longer than 1024 bytes") { try Specifier(parsing: String(repeating: "x", count: 1025)) }
        #expect(try set(">=" + String(repeating: "0", count: 256)).specifiers.count == 1)
    }
}
