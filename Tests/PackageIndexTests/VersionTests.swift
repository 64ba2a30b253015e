import PackageIndex
import Testing

/// PEP 440 versions: the spec's normalization table and ordering example, its refusals and bounds.
@Suite struct VersionTests {
    /// Every example of PEP 440's "Normalization" section, written → normalized.
    @Test(arguments: [
        ("1.1RC1", "1.1rc1"), ("00", "0"), ("09000", "9000"), ("1.0+foo0100", "1.0+foo0100"), ("1.0+0100", "1.0+100"),
        ("1.1.a1", "1.1a1"), ("1.1-a1", "1.1a1"), ("1.1_a1", "1.1a1"), ("1.0a.1", "1.0a1"), ("1.0a-1", "1.0a1"),
        ("1.1alpha1", "1.1a1"), ("1.1beta2", "1.1b2"), ("1.1c3", "1.1rc3"), ("1.1pre1", "1.1rc1"), ("1.1preview1", "1.1rc1"),
        ("1.2a", "1.2a0"), ("1.0a.", "1.0a0"), ("1.0post-", "1.0.post0"), ("1.0a.-1", "1.0a0.post1"), ("1.2-post2", "1.2.post2"), ("1.2post2", "1.2.post2"), ("1.2.post.2", "1.2.post2"), ("1.2_post_2", "1.2.post2"),
        ("1.0-r4", "1.0.post4"), ("1.0-rev4", "1.0.post4"), ("1.2.post", "1.2.post0"), ("1.0-1", "1.0.post1"),
        ("1.2-dev2", "1.2.dev2"), ("1.2dev2", "1.2.dev2"), ("1.2.dev", "1.2.dev0"), ("1.0+ubuntu-1", "1.0+ubuntu.1"),
        ("1.0+ubuntu_1", "1.0+ubuntu.1"), ("v1.0", "1.0"), ("V1.0", "1.0"), (" 1.0\n", "1.0"), ("\t1.0 ", "1.0"),
        ("1!2.0RC1-r3-dev4+Ubuntu_1.7", "1!2.0rc1.post3.dev4+ubuntu.1.7"), ("0!1.0", "1.0"), ("1.0a1.post2.dev3", "1.0a1.post2.dev3"),
    ])
    func normalization(_ written: String, _ normalized: String) throws {
        #expect(try version(written).description == normalized)
        #expect(try version(normalized).description == normalized)
    }

    @Test func partsAreRead() throws {
        let v = try version("2!3.4.5rc6.post7.dev8+Ab.9")
        #expect(v.epoch == 2 && v.release == [3, 4, 5] && v.post == 7 && v.dev == 8)
        #expect(v.pre?.phase == .releaseCandidate && v.pre?.number == 6)
        #expect(v.local == [.text("ab"), .number(9)])
        #expect(v.publicVersion.description == "2!3.4.5rc6.post7.dev8" && v.baseVersion.description == "2!3.4.5")
        #expect(v.isPrerelease && v.isPostrelease && v.isLocal)
        #expect(try !version("1.0.post1").isPrerelease && version("1.0.dev1").isPrerelease && version("1.0b1").isPrerelease)
    }

    /// The order PEP 440's "Summary of permitted suffixes and relative ordering" lists, plus the
    /// local-version rules of "Local version identifiers": every earlier one sorts before every later one.
    @Test func pep440OrderingExample() throws {
        let ordered = try [
            "1.dev0", "1.0.dev456", "1.0a1", "1.0a2.dev456", "1.0a12.dev456", "1.0a12", "1.0b1.dev456", "1.0b2", "1.0b2.post345.dev456",
            "1.0b2.post345", "1.0rc1.dev456", "1.0rc1", "1.0", "1.0+abc.5", "1.0+abc.7", "1.0+abc.7.1", "1.0+5", "1.0.post456.dev34",
            "1.0.post456", "1.0.15", "1.1.dev1", "2.0", "10.0", "1!0.1",
        ].map(version)
        for (i, a) in ordered.enumerated() {
            for (j, b) in ordered.enumerated() {
                #expect((a < b) == (i < j), "\(a) < \(b)")
                #expect((a == b) == (i == j), "\(a) == \(b)")
            }
        }
    }

    /// Every combination of small parts, written once canonically and once with the spec's other
    /// spellings and separators, reads to the canonical form; the combinations sort into a total
    /// order that agrees with `==` and with hashing.
    @Test func everySpellingOfEveryPartNormalizes() throws {
        let pres: [(String, String)] = [("", ""), ("a0", "-ALPHA"), ("b1", ".beta.1"), ("rc2", "_c_2"), ("rc3", "PREVIEW3"), ("a4", "a-4")]
        let posts: [(String, String)] = [("", ""), (".post0", "-r"), (".post3", "-3"), (".post4", "_REV.4"), (".post5", "post5")]
        let devs: [(String, String)] = [("", ""), (".dev0", "DEV"), (".dev5", "-dev_5")]
        let locals: [(String, String)] = [("", ""), ("+ab", "+AB"), ("+1", "+01"), ("+ab.1.c", "+ab-1_c")]
        var all: [Version] = []
        for (epoch, release) in [("", "1"), ("", "1.0"), ("", "1.2"), ("2!", "0.9")] {
            for (pre, preSpelling) in pres {
                for (post, postSpelling) in posts {
                    for (dev, devSpelling) in devs {
                        for (local, localSpelling) in locals {
                            // "1-alpha-3" is 1a3: the pre-release takes the number (checked below).
                            if preSpelling == "-ALPHA" && postSpelling == "-3" { continue }
                            let canonical = epoch + release + pre + post + dev + local
                            let written = " v" + epoch + release + preSpelling + postSpelling + devSpelling + localSpelling + "\t"
                            let parsed = try version(written)
                            #expect(parsed.description == canonical, "\(written.debugDescription)")
                            #expect(try parsed == version(canonical))
                            all.append(parsed)
                        }
                    }
                }
            }
        }
        #expect(all.count == 4 * (6 * 5 - 1) * 3 * 4)
        #expect(try version("1-alpha-3").description == "1a3" && version("1-alpha.post3").description == "1a0.post3")
        let sorted = all.sorted()
        for i in sorted.indices {
            for j in sorted.indices where j > i {
                #expect(!(sorted[j] < sorted[i]), "\(sorted[j]) < \(sorted[i])")
                if sorted[i] == sorted[j] { #expect(sorted[i].hashValue == sorted[j].hashValue) }
            }
        }
        // 1 and 1.0 are equal, so their pairs collapse; everything else is distinct.
        #expect(Set(all).count == all.count - all.count / 4)
    }

    @Test func trailingZerosAreInsignificant() throws {
        let (a, b, c) = try (version("1"), version("1.0"), version("1.0.0.0"))
        #expect(a == b && b == c && a.hashValue == c.hashValue)
        #expect(Set([a, b, c]).count == 1)
        #expect(a.description == "1" && c.description == "1.0.0.0")
        #expect(try version("1.0.1") > c && version("1.0a0") < a)
        #expect(try version("1.0+a") != b && version("1.0+A") == version("1.0+a") && version("1.0+01") == version("1.0+1"))
    }

    @Test(arguments: [
        ("", "it is empty"), ("1.0-", "unexpected \"-\""), ("1.0x", "unexpected \"x\""), ("a1", "does not start with a number"),
        ("1..0", "unexpected \"..0\""), ("1.0+", "an empty segment in the local label"), ("1.0+a..b", "an empty segment"),
        ("1.0 1", "spaces"), ("1.0\u{FF10}", "non-ASCII"), ("1!", "no release number after the epoch"), ("1.0-a-1-dev-x", "unexpected \"x\" at byte 12"),
        ("1.0.post1.post2", "unexpected \".post2\""), ("1.0dev1a1", "unexpected \"a1\""), ("1.0+a+b", "unexpected \"+b\""),
    ])
    func refusalsNameWhatIsWrong(_ text: String, _ reason: String) {
        expectRefused(reason) { try Version(parsing: text) }
        expectRefused("is not a PEP 440 version") { try Version(parsing: text) }
    }

    @Test func boundsAreCheckedBeforeParsing() throws {
        // 257 digits would overflow as a number; the length is what is reported.
        expectRefused("version: longer than 256 bytes") { try Version(parsing: String(repeating: "9", count: 257)) }
        #expect(try version(String(repeating: "0", count: 256)).description == "0")
        let segments = { (count: Int) in Array(repeating: "1", count: count).joined(separator: ".") }
        #expect(try version(segments(32)).release.count == 32)
        expectRefused("more than 32 release segments") { try Version(parsing: segments(33)) }
        #expect(try version("18446744073709551615").release == [UInt64.max])
        expectRefused("does not fit in 64 bits") { try Version(parsing: "18446744073709551616") }
        expectRefused("does not fit in 64 bits") { try Version(parsing: "1.0.post18446744073709551616") }
        expectRefused("does not fit in 64 bits") { try Version(parsing: "99999999999999999999!1") }
        expectRefused("local segment \"18446744073709551616\" does not fit") { try Version(parsing: "1+18446744073709551616") }
    }
}
