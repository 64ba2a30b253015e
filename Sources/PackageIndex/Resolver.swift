/// Where a resolution reads the index: a project's page and a wheel's core metadata. The host
/// fetches them over HTTP(S) from the index its policy names; tests give their own.
public protocol PackageSource {
    /// The page of the project with PEP 503 normal name `project`.
    func page(project: String) throws(ResolutionFailure) -> ProjectPage
    /// The core metadata of `file`, a wheel of that page (PEP 658: served beside it).
    func metadata(of file: DistributionFile) throws(ResolutionFailure) -> CoreMetadata
}

/// One wheel a resolution picked: what the host judges, fetches, logs and delivers.
public struct ResolvedPackage: Sendable, Hashable {
    /// PEP 503's normal form.
    public let name: String
    public let version: Version
    public let file: DistributionFile
    /// Lowercase hex, as the index gave it: the file must have this digest.
    public let sha256: String
    /// The normal name of the package whose `Requires-Dist` brought it in; nil when asked for.
    public let requiredBy: String?
}

/// Why a resolution stopped. Nothing has been fetched but index pages and core metadata.
public enum ResolutionFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The policy refuses the name (`version` nil), or every version the requirement admits
    /// (`version` the newest of them).
    case notAllowed(name: String, version: Version?, requiredBy: String?)
    /// A requirement that cannot be resolved as written (a URL, a bad string).
    case badRequirement(String)
    /// The project has source distributions only; nothing is built on the host.
    case sourceOnly(name: String, sdists: Int)
    /// No wheel of the project fits the guest and the requirement.
    case noMatch(name: String, why: String)
    /// Two requirements on one project that the first choice does not meet (no backtracking).
    case conflict(name: String, chosen: Version, wanted: String, requiredBy: String?)
    /// The index answered something that does not hold together.
    case badIndex(String)
    /// The index could not be read.
    case unreachable(String)
    /// More packages, or more requirements read (dependencies included), than a resolution takes.
    case tooMany(what: String, limit: Int)

    public var description: String {
        switch self {
        case .notAllowed(let name, let version, let parent):
            let what = version.map { "\(name) \($0)" } ?? name
            return "\(what) is not allowed by the policy's packages.pip" + (parent.map { " (a dependency of \($0))" } ?? "")
        case .badRequirement(let why): return why
        case .sourceOnly(let name, let count):
            return "\(name) has only source distributions (\(count)) and no wheel: nothing is built on the host"
        case .noMatch(let name, let why): return "no wheel of \(name) fits: \(why)"
        case .conflict(let name, let chosen, let wanted, let parent):
            return "\(name) \(chosen) was chosen, but \(parent.map { "\($0) needs" } ?? "the request asks for") \(name)\(wanted)"
                + " (the resolver does not backtrack: pin a version that meets both)"
        case .badIndex(let why): return "the index: \(why)"
        case .unreachable(let why): return "the index cannot be read: \(why)"
        case .tooMany(let what, let limit): return "the request needs more than \(limit) \(what)"
        }
    }
}

/// Resolves requirements to wheels for one interpreter, the way pip's resolver would without
/// backtracking: breadth first, the newest version each requirement and the policy admit,
/// dependencies read from core metadata and their markers evaluated for the guest.
/// Files that are yanked (PEP 592), do not fit the guest's tags or Requires-Python, or are not
/// wheels are never picked. `allows(name, version)` is the policy (version nil: the name alone),
/// asked before a project's page is read and for each candidate version.
public struct Resolver: Sendable {
    public var environment: Environment
    public var tags: SupportedTags
    public static let maximumPackages = 256
    /// How many requirements (dependencies included) one resolution reads.
    public static let maximumRequirements = 4096

    public init(environment: Environment = .debian12CPython311, tags: SupportedTags = .debian12CPython311) {
        self.environment = environment
        self.tags = tags
    }

    struct Pending {
        var requirement: Requirement
        var requiredBy: String?
    }

    struct Chosen {
        var package: ResolvedPackage
        var metadata: CoreMetadata
        var extras: Set<String>
    }

    public func resolve(_ requests: [Requirement], source: some PackageSource,
                        allows: (String, Version?) -> Bool) throws(ResolutionFailure) -> [ResolvedPackage] {
        let python: Version
        do { python = try Version(parsing: environment.pythonFullVersion) } catch {
            throw .badRequirement("the guest's Python version \(environment.pythonFullVersion) does not parse: \(error)")
        }
        var queue = requests.map { Pending(requirement: $0, requiredBy: nil) }
        var next = 0
        var chosen: [String: Chosen] = [:]
        var order: [String] = []
        while next < queue.count {
            guard next < Self.maximumRequirements else { throw .tooMany(what: "requirements read", limit: Self.maximumRequirements) }
            let pending = queue[next]
            next += 1
            let requirement = pending.requirement
            if requirement.url != nil {
                throw .badRequirement("\(requirement.name) names a URL (\(requirement)): only packages from the policy's index are installed")
            }
            do {
                guard try requirement.applies(in: environment, extras: pending.requiredBy.flatMap { chosen[$0].map { Array($0.extras) } } ?? [])
                else { continue }
            } catch {
                throw .badIndex("the marker of \(requirement) does not evaluate: \(error)")
            }
            let name = requirement.normalizedName
            let extras = Set(requirement.normalizedExtras)
            if var existing = chosen[name] {
                let version = existing.package.version
                guard requirement.specifiers.contains(version, prereleases: true) else {
                    throw .conflict(name: name, chosen: version, wanted: requirement.specifiers.description, requiredBy: pending.requiredBy)
                }
                let added = extras.subtracting(existing.extras)
                if !added.isEmpty {
                    existing.extras.formUnion(added)
                    chosen[name] = existing
                    queue += existing.metadata.requiresDist.map { Pending(requirement: $0, requiredBy: name) }
                }
                continue
            }
            guard allows(name, nil) else { throw .notAllowed(name: name, version: nil, requiredBy: pending.requiredBy) }
            guard order.count < Self.maximumPackages else { throw .tooMany(what: "packages", limit: Self.maximumPackages) }
            let page = try source.page(project: name)
            let (version, file) = try choose(name, requirement, page, python: python, requiredBy: pending.requiredBy) { allows($0, $1) }
            let metadata = try source.metadata(of: file)
            guard metadata.normalizedName == name, metadata.version == version else {
                throw .badIndex("the core metadata of \(file.filename) names \(metadata.name) \(metadata.version)")
            }
            guard let sha256 = file.sha256 else { throw .badIndex("\(file.filename) has no sha256 hash on its index page") }
            let package = ResolvedPackage(name: name, version: version, file: file, sha256: sha256, requiredBy: pending.requiredBy)
            chosen[name] = Chosen(package: package, metadata: metadata, extras: extras)
            order.append(name)
            queue += metadata.requiresDist.map { Pending(requirement: $0, requiredBy: name) }
        }
        return order.compactMap { chosen[$0]?.package }
    }

    /// The newest version whose wheel fits and that the requirement and the policy admit, and
    /// its best wheel (the most preferred tag, then the highest build number).
    func choose(_ name: String, _ requirement: Requirement, _ page: ProjectPage, python: Version, requiredBy: String?,
                allows: (String, Version) -> Bool) throws(ResolutionFailure) -> (Version, DistributionFile) {
        var wheels: [Version: [(file: DistributionFile, rank: Int, build: WheelName.BuildTag?)]] = [:]
        var sdists = 0
        var ofProject = 0
        let clauses = requirement.specifiers.specifiers
        let pinned = clauses.count == 1 && ((clauses[0].op == .equal && !clauses[0].isPrefixMatch) || clauses[0].op == .arbitrary)
        for file in page.files {
            guard file.filename.hasSuffix(".whl") else {
                if Self.isSourceDistribution(file.filename) { sdists += 1 }
                continue
            }
            guard let wheel = try? WheelName(parsing: file.filename), wheel.normalizedName == name else { continue }
            ofProject += 1
            // PEP 592: a yanked file only for an exact pin.
            guard !file.isYanked || (pinned && requirement.specifiers.contains(wheel.version, prereleases: true)) else { continue }
            if let text = file.requiresPython {
                guard let needed = try? SpecifierSet(parsing: text), needed.contains(python, prereleases: true) else { continue }
            }
            guard let best = tags.bestTag(for: wheel) else { continue }
            wheels[wheel.version, default: []].append((file, best.rank, wheel.buildTag))
        }
        guard ofProject > 0 else {
            if sdists > 0 { throw .sourceOnly(name: name, sdists: sdists) }
            throw .noMatch(name: name, why: "the index lists no files for it")
        }
        let versions = wheels.keys.sorted(by: >)
        guard !versions.isEmpty else {
            throw .noMatch(name: name, why: "none of its \(ofProject) wheels is for CPython \(environment.pythonVersion) on \(environment.platformMachine) Linux, unyanked")
        }
        let specifiers = requirement.specifiers
        var admitted = versions.filter { specifiers.contains($0, prereleases: specifiers.namesPrerelease) }
        // PEP 440, "Handling of pre-releases": when only pre-releases match, they are taken.
        if admitted.isEmpty { admitted = versions.filter { specifiers.contains($0, prereleases: true) } }
        guard let newest = admitted.first else {
            throw .noMatch(name: name, why: "no version of \(versions.count) with a fitting wheel meets \(specifiers.specifiers.isEmpty ? "it" : specifiers.description)")
        }
        guard let version = admitted.first(where: { allows(name, $0) }) else {
            throw .notAllowed(name: name, version: newest, requiredBy: requiredBy)
        }
        let files = wheels[version] ?? []
        // A wheel without a build tag sorts before every one with a tag.
        func later(_ a: WheelName.BuildTag?, _ b: WheelName.BuildTag?) -> Bool {
            guard let a else { return false }
            guard let b else { return true }
            return a > b
        }
        guard let best = files.min(by: { a, b in a.rank != b.rank ? a.rank < b.rank : later(a.build, b.build) }) else { throw .noMatch(name: name, why: "no wheel of \(version)") }
        return (version, best.file)
    }

    /// The source distribution formats pip knows (sdist and the legacy archive formats).
    static func isSourceDistribution(_ filename: String) -> Bool {
        [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar"].contains { filename.hasSuffix($0) }
    }
}
