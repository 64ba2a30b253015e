import PackageIndex
import Testing

/// Wheel filenames and the guest's compatibility tags: the spec's examples, the order
/// `packaging.tags.sys_tags()` gives on Debian 12's CPython 3.11, refusals and bounds.
@Suite struct WheelNameTests {
    func wheel(_ name: String) throws -> WheelName { try WheelName(parsing: name) }
    let guest = SupportedTags.debian12CPython311

    @Test func specExamplesAreRead() throws {
        let plain = try wheel("distribution-1.0-1-py27-none-any.whl")
        #expect(plain.distribution == "distribution" && plain.version.description == "1.0")
        #expect(plain.buildTag?.number == 1 && plain.buildTag?.suffix == "" && plain.tags.map(\.description) == ["py27-none-any"])
        let numpy = try wheel("numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
        #expect(numpy.buildTag == nil && numpy.pythonTags == ["cp311"] && numpy.abiTags == ["cp311"])
        #expect(numpy.platformTags == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"] && numpy.tags.count == 2)
        let universal = try wheel("six-1.16.0-py2.py3-none-any.whl")
        #expect(universal.tags.map(\.description) == ["py2-none-any", "py3-none-any"])
        let odd = try wheel("Foo_Bar-2!1.0.post1+local.1-12abc-CP39.cp310-ABI3-Linux_X86_64.whl")
        #expect(odd.normalizedName == "foo-bar" && odd.version.description == "2!1.0.post1+local.1")
        #expect(odd.buildTag?.number == 12 && odd.buildTag?.suffix == "abc" && odd.pythonTags == ["cp39", "cp310"] && odd.abiTags == ["abi3"])
        #expect(try wheel("a-1.0-2-py3-none-any.whl").buildTag! < wheel("a-1.0-10-py3-none-any.whl").buildTag!)
    }

    @Test(arguments: [
        ("../evil-1.0-py3-none-any.whl", "has \"/\""), ("a-1.0-py3-none.whl", "has 4 parts"), ("a-1.0-py3-none-any.zip", "does not end in .whl"),
        ("a-1.0-x-py3-none-any.whl", "the build tag \"x\" does not start with a number"), ("a-1..0-py3-none-any.whl", "is not a PEP 440 version"),
        ("a-1.0-py3--any.whl", "the ABI tag \"\" is empty"), ("a-1.0-py3-none-.whl", "the platform tag \"\""), ("a-1.0-py3.-none-any.whl", "the python tag"),
        ("-1.0-py3-none-any.whl", "the distribution name"), ("a b-1.0-py3-none-any.whl", "has \" \""), (".whl", "does not end in .whl"),
        ("a-1.0-1-2-py3-none-any.whl", "has 7 parts"), ("a-1.0-py3-none-any.whl\u{0}", "has \"\\x00\""),
    ])
    func refusalsNameWhatIsWrong(_ name: String, _ reason: String) {
        expectRefused(reason) { try WheelName(parsing: name) }
        expectRefused("wheel filename: ") { try WheelName(parsing: name) }
    }

    @Test func boundsAreCheckedBeforeParsing() throws {
        let name = { (length: Int) in String(repeating: "a", count: length - 21) + "-1.0-py3-none-any.whl" }
        #expect(try wheel(name(255)).distribution.utf8.count == 234)
        expectRefused("longer than 255 bytes") { try WheelName(parsing: name(256)) }
        let tags = { (count: Int) in "a-1.0-py3-none-" + (0..<count).map { "p\($0)" }.joined(separator: ".") + ".whl" }
        #expect(try wheel(tags(16)).platformTags.count == 16)
        expectRefused("more than 16 platform tags") { try WheelName(parsing: tags(17)) }
    }

    /// `packaging.tags.sys_tags()` for CPython 3.11, glibc 2.36, x86_64: 36 platforms (32
    /// manylinux_2_N, 3 legacy aliases, linux), in 25 interpreter/ABI groups, then 14 `any` tags.
    @Test func guestTagOrder() {
        let platforms = guest.tags.prefix(36).map(\.platform)
        #expect(platforms.first == "manylinux_2_36_x86_64" && platforms.last == "linux_x86_64")
        #expect(Array(platforms[17...21]) == ["manylinux_2_19_x86_64", "manylinux_2_18_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                                              "manylinux_2_16_x86_64"])
        #expect(Array(platforms[24...27]) == ["manylinux_2_13_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64", "manylinux_2_11_x86_64"])
        #expect(Array(platforms[32...35]) == ["manylinux_2_6_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64", "linux_x86_64"])
        #expect(guest.tags.count == 36 * 25 + 14)
        var groups: [String] = []
        for (index, tag) in guest.tags.prefix(900).enumerated() {
            #expect(tag.platform == platforms[index % 36])
            if index % 36 == 0 { groups.append("\(tag.python)-\(tag.abi)") }
        }
        #expect(groups == ["cp311-cp311", "cp311-abi3", "cp311-none"] + (2...10).reversed().map { "cp3\($0)-abi3" }
                + ["py311-none", "py3-none"] + (0...10).reversed().map { "py3\($0)-none" })
        #expect(guest.tags.suffix(14).map(\.description) == ["cp311-none-any", "py311-none-any", "py3-none-any"]
                + (0...10).reversed().map { "py3\($0)-none-any" })
        #expect(Set(guest.tags).count == guest.tags.count)
    }

    @Test func bestTagIsTheLowestRank() throws {
        let numpy = try wheel("numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
        let best = try #require(guest.bestTag(for: numpy))
        #expect(best.tag.description == "cp311-cp311-manylinux_2_17_x86_64" && best.rank == 19)
        #expect(try guest.bestTag(for: wheel("six-1.16.0-py2.py3-none-any.whl"))?.rank == 902)
        #expect(try guest.bestTag(for: wheel("c-41.0.3-cp37-abi3-manylinux_2_28_x86_64.whl"))?.rank == 36 * (3 + 3) + 8)
        #expect(try guest.bestTag(for: wheel("a-1.0-cp311-cp311-linux_x86_64.whl"))?.rank == 35)
        for name in ["a-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", "a-1.0-cp311-cp311-musllinux_1_1_x86_64.whl", "a-1.0-cp311-cp311-win_amd64.whl",
                     "a-1.0-cp311-cp311-manylinux_2_38_x86_64.whl", "a-1.0-cp311-cp311-manylinux_2_17_aarch64.whl", "a-1.0-py2-none-any.whl",
                     "a-1.0-cp311-cp310-manylinux_2_17_x86_64.whl"] {
            #expect(try guest.bestTag(for: wheel(name))?.rank == nil, "\(name)")
        }
        #expect(guest.rank(of: Tag(python: "CP311", abi: "cp311", platform: "MANYLINUX_2_36_X86_64")) == 0)
    }
}
