import PackageIndex

/// What the host reads when it installs packages for a guest (issue 17): the first byte picks
/// the parser. 0: a PEP 440 version; 1: a specifier set; 2: a PEP 508 requirement; 3: a wheel's
/// METADATA; 4: a wheel's filename; 5: a simple index project page (the second byte: even for
/// HTML, odd for JSON). Whatever parses reads back from its description to the same thing and
/// stays within its bounds.
enum PackageIndexTarget {
    static func run(_ input: [UInt8]) {
        guard let mode = input.first else { return }
        let rest = Array(input.dropFirst())
        let text = String(decoding: rest, as: UTF8.self)
        switch mode % 6 {
        case 0: version(text)
        case 1: specifiers(text)
        case 2: requirement(text)
        case 3: metadata(rest)
        case 4: wheelName(text)
        default: simpleIndex(rest)
        }
    }

    /// Whether the parser the first byte picks accepts the rest (the seeds must get past it).
    static func accepts(_ input: [UInt8]) -> Bool {
        guard let mode = input.first else { return false }
        let rest = Array(input.dropFirst())
        let text = String(decoding: rest, as: UTF8.self)
        switch mode % 6 {
        case 0: return (try? Version(parsing: text)) != nil
        case 1: return (try? SpecifierSet(parsing: text)) != nil
        case 2: return (try? Requirement(parsing: text)) != nil
        case 3: return (try? CoreMetadata(parsing: rest)) != nil
        case 4: return (try? WheelName(parsing: text)) != nil
        default:
            let page = Array(rest.dropFirst()), pageURL = "https://pypi.org/simple/demo/"
            if rest.first.map({ $0 & 1 == 0 }) ?? true { return (try? SimpleIndex.projectPage(html: page, url: pageURL))?.files.count == 2 }
            return (try? SimpleIndex.projectPage(json: page, url: pageURL))?.files.count == 2
        }
    }

    /// Versions the specifier and ordering properties are checked against.
    static let probes: [Version] = [
        "0", "0.9", "1.0", "1.0.0", "1.0a1", "1.0b2.post3", "1.0rc1.dev1", "1.0.dev0", "1.0.post1", "1.0+local.7", "1!1.0", "1.4.5",
        "2.0rc1", "2.0", "3.11", "3.11.2", "10.0.post2.dev3",
    ].compactMap { try? Version(parsing: $0) }

    /// The description reads back to an equal version with the same description; the order is
    /// a total order consistent with equality and hashing.
    static func version(_ text: String) {
        guard let version = try? Version(parsing: text) else { return }
        let normalized = version.description
        guard normalized.utf8.count <= Version.maximumBytes else { return }
        guard let again = try? Version(parsing: normalized) else { violated("\(normalized) (from a version) does not parse") }
        guard again == version, again.description == normalized else { violated("\(normalized) reads back as \(again)") }
        guard version.publicVersion <= version, version.baseVersion.release == version.release else { violated("\(version)'s public or base version") }
        for probe in probes {
            let ordered = [version < probe, version == probe, probe < version].filter { $0 }.count
            guard ordered == 1 else { violated("\(version) and \(probe) are not ordered exactly one way") }
            if version == probe, version.hashValue != probe.hashValue { violated("\(version) == \(probe) with different hashes") }
        }
    }

    /// The description reads back to a set that admits exactly the same probes.
    static func specifiers(_ text: String) {
        guard let set = try? SpecifierSet(parsing: text) else { return }
        guard set.specifiers.count <= SpecifierSet.maximumClauses else { violated("\(set.specifiers.count) clauses") }
        let normalized = set.description
        guard normalized.utf8.count <= SpecifierSet.maximumBytes else { return }
        guard let again = try? SpecifierSet(parsing: normalized) else { violated("\(normalized) (from a specifier set) does not parse") }
        guard again.description == normalized else { violated("\(normalized) reads back as \(again)") }
        for probe in probes {
            for prereleases in [false, true] where set.contains(probe, prereleases: prereleases) != again.contains(probe, prereleases: prereleases) {
                violated("\(normalized) and its reading differ on \(probe)")
            }
        }
        let filtered = set.filter(probes)
        guard filtered.allSatisfy({ probe in set.specifiers.allSatisfy { $0.admits(probe) } }) else { violated("\(normalized) filters in what it does not admit") }
    }

    /// The description reads back to an equal requirement, whose marker answers alike.
    static func requirement(_ text: String) {
        guard let requirement = try? Requirement(parsing: text) else { return }
        let normalized = requirement.description
        guard normalized.utf8.count <= Requirement.maximumBytes else { return }
        guard let again = try? Requirement(parsing: normalized) else { violated("\(normalized) (from a requirement) does not parse") }
        guard again == requirement, again.description == normalized else { violated("\(normalized) reads back as \(again)") }
        guard ProjectName.isValid(requirement.name) else { violated("the name \(requirement.name) is not valid") }
        let environment = Environment.debian12CPython311
        let first = Result { () throws(PackageIndexError) in try requirement.applies(in: environment, extras: ["security", "x"]) }
        let second = Result { () throws(PackageIndexError) in try again.applies(in: environment, extras: ["security", "x"]) }
        guard first == second else { violated("\(normalized)'s marker answers differently after reading back") }
    }

    /// A METADATA that parses gives the same with CRLF line ends, within its bounds.
    static func metadata(_ bytes: [UInt8]) {
        let parsed = Result { () throws(PackageIndexError) in try CoreMetadata(parsing: bytes) }
        guard !bytes.contains(0x0D) else { return }
        let crlf = bytes.flatMap { $0 == 0x0A ? [0x0D, 0x0A] : [$0] }
        guard crlf.count <= CoreMetadata.maximumBytes else { return }
        let again = Result { () throws(PackageIndexError) in try CoreMetadata(parsing: crlf) }
        switch (parsed, again) {
        case (.success(let a), .success(let b)):
            guard a == b else { violated("METADATA reads differently with CRLF line ends") }
            guard a.requiresDist.count <= CoreMetadata.maximumRequiresDist, ProjectName.isValid(a.name) else { violated("METADATA out of bounds") }
        case (.failure, .failure): break
        default: violated("METADATA is accepted with one line end and refused with the other")
        }
    }

    /// A filename that parses reads back the same, is one path component, and ranks within the guest's tags.
    static func wheelName(_ text: String) {
        guard let wheel = try? WheelName(parsing: text) else { return }
        guard !text.utf8.contains(UInt8(ascii: "/")), text.utf8.count <= WheelName.maximumBytes, text.hasSuffix(".whl") else {
            violated("\(text) was accepted as a wheel's filename")
        }
        guard wheel.tags.count == wheel.pythonTags.count * wheel.abiTags.count * wheel.platformTags.count else { violated("\(text)'s tags") }
        let supported = SupportedTags.debian12CPython311
        if let best = supported.bestTag(for: wheel) {
            guard wheel.tags.contains(best.tag), supported.tags.indices.contains(best.rank), supported.tags[best.rank] == best.tag else {
                violated("\(text)'s best tag \(best.tag) at \(best.rank)")
            }
        } else if wheel.tags.contains(where: { supported.rank(of: $0) != nil }) {
            violated("\(text) has a supported tag but no best one")
        }
    }

    /// Every file of a page that parses has an absolute http(s) URL without a fragment, that
    /// resolves to itself, a safe filename and well-formed hashes; never more than the bounds.
    static func simpleIndex(_ bytes: [UInt8]) {
        guard let kind = bytes.first else { return }
        let page = Array(bytes.dropFirst())
        let pageURL = "https://pypi.org/simple/demo/"
        let result = Result { () throws(PackageIndexError) -> ProjectPage in
            if kind & 1 == 0 { return try SimpleIndex.projectPage(html: page, url: pageURL) }
            return try SimpleIndex.projectPage(json: page, url: pageURL)
        }
        guard case .success(let parsed) = result else { return }
        guard parsed.files.count <= SimpleIndex.maximumFiles else { violated("\(parsed.files.count) files") }
        let base = URLReference(pageURL)
        for file in parsed.files {
            let url = URLReference(file.url)
            guard url.isHTTP, url.fragment == nil, url.resolved(against: base).description == file.url else { violated("the file URL \(file.url)") }
            guard !file.filename.isEmpty, !file.filename.utf8.contains(UInt8(ascii: "/")), file.filename != "..", file.filename != "." else {
                violated("the file name \(file.filename)")
            }
            if let sha256 = file.sha256, sha256.utf8.count != 64 || !sha256.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) {
                violated("the sha256 \(sha256)")
            }
        }
    }
}
