/// Platform compatibility tags (https://packaging.python.org/en/latest/specifications/platform-compatibility-tags/):
/// one (python, ABI, platform) triple, and the ordered list an interpreter supports, best first,
/// by which an installer picks among a release's wheels.
public struct Tag: Sendable, Hashable, CustomStringConvertible {
    public let python: String
    public let abi: String
    public let platform: String

    public init(python: String, abi: String, platform: String) {
        self.python = ASCII.lowercased(python)
        self.abi = ASCII.lowercased(abi)
        self.platform = ASCII.lowercased(platform)
    }

    public var description: String { "\(python)-\(abi)-\(platform)" }
}

/// The tags an interpreter installs, best first; a wheel fits when one of its tags is among them,
/// and the lowest index among its tags is its rank.
public struct SupportedTags: Sendable {
    public let tags: [Tag]
    let ranks: [Tag: Int]

    public init(_ tags: [Tag]) {
        self.tags = tags
        var ranks: [Tag: Int] = [:]
        for (index, tag) in tags.enumerated() where ranks[tag] == nil { ranks[tag] = index }
        self.ranks = ranks
    }

    /// The guest: Debian 12's CPython 3.11 on x86_64, glibc 2.36.
    public static let debian12CPython311 = SupportedTags.cpython3(minor: 11, glibcMinor: 36, architecture: "x86_64")

    /// The order `packaging.tags.sys_tags()` gives for CPython 3.`minor` on glibc 2.`glibcMinor`
    /// ("Use": the interpreter's own ABI, abi3, none; older abi3 releases; then py3x-none for
    /// the platforms, then `any`).
    public static func cpython3(minor: Int, glibcMinor: Int, architecture: String) -> SupportedTags {
        let platforms = manylinuxPlatforms(glibcMinor: glibcMinor, architecture: architecture) + ["linux_\(architecture)"]
        let interpreter = "cp3\(minor)"
        var tags: [Tag] = []
        for abi in [interpreter, "abi3", "none"] {
            tags += platforms.map { Tag(python: interpreter, abi: abi, platform: $0) }
        }
        // abi3 wheels built for older CPython 3 releases ("Python Tag", "ABI Tag": abi3 is stable from 3.2).
        for older in stride(from: minor - 1, through: 2, by: -1) {
            tags += platforms.map { Tag(python: "cp3\(older)", abi: "abi3", platform: $0) }
        }
        let generic = ["py3\(minor)", "py3"] + stride(from: minor - 1, through: 0, by: -1).map { "py3\($0)" }
        for python in generic {
            tags += platforms.map { Tag(python: python, abi: "none", platform: $0) }
        }
        tags.append(Tag(python: interpreter, abi: "none", platform: "any"))
        tags += generic.map { Tag(python: $0, abi: "none", platform: "any") }
        return SupportedTags(tags)
    }

    /// "manylinux" (PEP 600): manylinux_2_N for N from the guest's glibc down to 5 (x86_64's
    /// oldest), each legacy alias (PEP 513, 571, 599) right after the version it stands for.
    static func manylinuxPlatforms(glibcMinor: Int, architecture: String) -> [String] {
        let legacy = [17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"]
        var platforms: [String] = []
        for glibc in stride(from: glibcMinor, through: 5, by: -1) {
            platforms.append("manylinux_2_\(glibc)_\(architecture)")
            if let alias = legacy[glibc] { platforms.append("\(alias)_\(architecture)") }
        }
        return platforms
    }

    /// Where `tag` stands, 0 the best; nil when it is not supported.
    public func rank(of tag: Tag) -> Int? { ranks[tag] }

    /// The wheel's best supported tag and its rank, nil when it does not fit this interpreter.
    public func bestTag(for wheel: WheelName) -> (tag: Tag, rank: Int)? {
        var best: (tag: Tag, rank: Int)?
        for tag in wheel.tags {
            if let rank = ranks[tag], rank < (best?.rank ?? Int.max) { best = (tag, rank) }
        }
        return best
    }
}
