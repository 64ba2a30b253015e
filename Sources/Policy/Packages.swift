import PackageIndex

/// `packages`: what an agent may install (docs/policy.md, "packages"). Each ecosystem is
/// judged package by package, dependencies included, before anything is fetched; a section that
/// is absent allows nothing of its kind.
public struct Packages: Sendable, Equatable {
    /// nil: no Python packages.
    public var pip: PipPackages?
    /// nil: no Debian packages.
    public var apt: AptPackages?

    public init(pip: PipPackages? = nil, apt: AptPackages? = nil) {
        self.pip = pip
        self.apt = apt
    }
}

/// Which package manager an install goes through.
public enum PackageEcosystem: String, Sendable, Hashable, CaseIterable {
    case pip, apt
}

/// `packages.pip`: wheels from one simple repository (PEP 503), the host resolving.
public struct PipPackages: Sendable, Equatable {
    public var rule: RuleRef
    /// The simple repository's root (`https://pypi.org/simple`); the host asks it, the agent
    /// names no index.
    public var index: BaseURL
    public var allow: [PackageRule]

    public static func == (a: PipPackages, b: PipPackages) -> Bool { a.index == b.index && a.allow == b.allow }
}

/// `packages.apt`: Debian packages through the guest's apt, from the mirrors named.
public struct AptPackages: Sendable, Equatable {
    public var rule: RuleRef
    public var mirrors: [BaseURL]
    public var allow: [PackageRule]

    public static func == (a: AptPackages, b: AptPackages) -> Bool { a.mirrors == b.mirrors && a.allow == b.allow }
}

/// One `allow` entry: a name glob and, for pip, the versions allowed.
public struct PackageRule: Sendable, Equatable {
    public var rule: RuleRef
    /// Over normalised names (PEP 503 for pip: lowercase, runs of `-_.` as one `-`; Debian's
    /// own lowercase names for apt); the pattern is normalised the same way.
    public var name: Glob
    /// A PEP 440 specifier set; nil: any version. pip only.
    public var versions: SpecifierSet?

    public static func == (a: PackageRule, b: PackageRule) -> Bool { a.name == b.name && a.versions == b.versions }
}

extension AgentPolicy {
    /// A request to install from `ecosystem`: allowed by the section's rule where there is one.
    func judgeInstallRequest(_ ecosystem: PackageEcosystem) -> Decision {
        switch ecosystem {
        case .pip: packages?.pip.map { .allow($0.rule) } ?? .deny(.defaultDeny, .nothingAllowed("pip packages"))
        case .apt: packages?.apt.map { .allow($0.rule) } ?? .deny(.defaultDeny, .nothingAllowed("apt packages"))
        }
    }

    /// One package that an install would bring in, by its normalised name and exact version:
    /// the first `allow` rule whose name matches decides, by its versions (an empty version:
    /// by the name alone).
    func judgeInstall(_ ecosystem: PackageEcosystem, name: String, version: String) -> Decision {
        let section: (rule: RuleRef, allow: [PackageRule])
        switch ecosystem {
        case .pip:
            guard let pip = packages?.pip else { return .deny(.defaultDeny, .nothingAllowed("pip packages")) }
            section = (pip.rule, pip.allow)
        case .apt:
            guard let apt = packages?.apt else { return .deny(.defaultDeny, .nothingAllowed("apt packages")) }
            section = (apt.rule, apt.allow)
        }
        guard let normal = Self.packageName(name, ecosystem) else {
            return .deny(section.rule, .malformedCall("\(quoted(name)) is not a valid name for \(ecosystem.rawValue) packages"))
        }
        guard let rule = section.allow.first(where: { $0.name.matches(normal) }) else {
            return .deny(section.rule, .packageNotAllowed(ecosystem: ecosystem, name: normal))
        }
        guard let versions = rule.versions, !version.isEmpty else { return .allow(rule.rule) }
        let parsed: Version
        do { parsed = try Version(parsing: version) } catch {
            return .deny(rule.rule, .malformedCall("\(normal) version \(quoted(version)): \(error.reason)"))
        }
        // A pre-release is allowed only where the rule names one (PEP 440, "Handling of
        // pre-releases"): `>=1.0` does not let in 2.0rc1.
        guard versions.contains(parsed, prereleases: versions.namesPrerelease) else {
            return .deny(rule.rule, .packageVersionNotAllowed(name: normal, version: parsed.description, allowed: versions.description))
        }
        return .allow(rule.rule)
    }

    /// The name rules compare: PEP 503's normal form for pip; for apt, a Debian package name
    /// (Policy §5.6.1: lowercase letters, digits, `+ - .`, at least two, starting alphanumeric).
    public static func packageName(_ name: String, _ ecosystem: PackageEcosystem) -> String? {
        switch ecosystem {
        case .pip:
            return ProjectName.isValid(name) ? ProjectName.normalize(name) : nil
        case .apt:
            let bytes = Array(name.utf8)
            func allowed(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2B || b == 0x2D || b == 0x2E }
            guard (2...128).contains(bytes.count), bytes.allSatisfy(allowed), bytes[0] != 0x2B, bytes[0] != 0x2D, bytes[0] != 0x2E else {
                return nil
            }
            return name
        }
    }

    /// `packages` for sub-agents: each section within the parent's (the same index, mirrors
    /// among the parent's), each rule within one of the parent's rules.
    func packageWidenings(_ parent: Packages?) -> [Widening] {
        var found: [Widening] = []
        if let pip = packages?.pip {
            if let parentPip = parent?.pip {
                if pip.index != parentPip.index {
                    found.append(Widening(rule: pip.rule, reason: "index \(pip.index) is not the parent's \(parentPip.index)"))
                }
                found += Self.ruleWidenings(pip.allow, parentPip.allow, field: "packages.pip")
            } else {
                found.append(Widening(rule: pip.rule, reason: "the parent allows no pip packages (it has no packages.pip section)"))
            }
        }
        if let apt = packages?.apt {
            if let parentApt = parent?.apt {
                for mirror in apt.mirrors where !parentApt.mirrors.contains(mirror) {
                    found.append(Widening(rule: apt.rule, reason: "mirror \(mirror) is not among the parent's packages.apt.mirrors"))
                }
                found += Self.ruleWidenings(apt.allow, parentApt.allow, field: "packages.apt")
            } else {
                found.append(Widening(rule: apt.rule, reason: "the parent allows no apt packages (it has no packages.apt section)"))
            }
        }
        return found
    }

    /// Each child rule needs a parent rule whose name covers it. The parent's first rule that
    /// matches a name decides for it, so every parent rule up to the covering one that may match
    /// some of the child's names must admit no fewer versions: one without versions admits any,
    /// else the child must keep each of its clauses (more clauses only narrow).
    static func ruleWidenings(_ children: [PackageRule], _ parents: [PackageRule], field: String) -> [Widening] {
        var found: [Widening] = []
        for child in children {
            guard let cover = parents.firstIndex(where: { child.name.isWithin($0.name) }) else {
                found.append(Widening(rule: child.rule, reason: "name \(quoted(child.name.pattern)) is not within any of the parent's \(field).allow"))
                continue
            }
            let clauses = Set(child.versions?.specifiers ?? [])
            for parent in parents[...cover] where parent.name.mayOverlap(child.name) {
                guard let versions = parent.versions, !versions.specifiers.allSatisfy(clauses.contains) else { continue }
                let childText = child.versions.map { quoted($0.description) } ?? "any version"
                found.append(Widening(rule: child.rule,
                                      reason: "versions \(childText) do not keep the parent's \(parent.rule) \(quoted(versions.description))"))
                break
            }
        }
        return found
    }
}

/// A `.deb` asked of an apt mirror: the package it is (Debian's `NAME_VERSION_ARCH.deb`) and
/// the file's name as the request names it.
public struct AptPoolFile: Sendable, Equatable {
    public let name: String
    public let file: String
}

extension AgentPolicy {
    /// The mirror of `packages.apt.mirrors` a plain HTTP request goes to, and its path below the
    /// mirror's ("/dists/...", "/pool/..."); nil when it goes to none.
    func aptMirror(host raw: String, port: UInt16, path: String) -> (mirror: BaseURL, below: Substring)? {
        guard let apt = packages?.apt, case .success(let host) = HostName.normalize(raw), case .success(let normal) = HTTPPath.check(path) else {
            return nil
        }
        for mirror in apt.mirrors where mirror.scheme == .http && mirror.host == host && mirror.port == port {
            let base = mirror.path == "/" ? "" : mirror.path
            if normal == base { return (mirror, "/") }
            if normal.hasPrefix(base + "/") { return (mirror, normal.dropFirst(base.count)) }
        }
        return nil
    }

    /// The `.deb` a request under an apt mirror's `pool/` asks for; nil for any other request.
    public func aptPoolFile(host: String, port: UInt16, path: String) -> AptPoolFile? {
        guard let (_, below) = aptMirror(host: host, port: port, path: path), below.hasPrefix("/pool/"),
              let file = below.split(separator: "/").last, file.hasSuffix(".deb"), let underscore = file.firstIndex(of: "_") else { return nil }
        return AptPoolFile(name: String(file[..<underscore]), file: String(file))
    }

    /// A plain HTTP request under one of `packages.apt.mirrors` (docs/policy.md, "Packages"):
    /// judged by the apt section instead of `network.egress`, so that the guest's apt reaches the
    /// mirrors and nothing else. GET and HEAD only. Outside `pool/` (the archive's indexes, which
    /// apt checks against its signed Release) the section's rule allows; a `.deb` under `pool/`
    /// is judged by its package name; anything else under `pool/` is refused. A mirror named by
    /// a host name must resolve to public addresses, as egress names must. Nil: not a mirror's.
    func judgeAptMirror(host raw: String, port: UInt16, method: String, path: String, resolved: [IPAddress]) -> Decision? {
        guard let apt = packages?.apt, let (mirror, below) = aptMirror(host: raw, port: port, path: path) else { return nil }
        guard method == "GET" || method == "HEAD" else { return .deny(apt.rule, .methodNotAllowed(host: raw, method: method)) }
        let addresses: [IPAddress]
        switch mirror.host {
        case .address(let address):
            guard resolved.isEmpty || resolved == [address] else { return .deny(apt.rule, .malformedCall("an address literal resolves only to itself")) }
            addresses = [address]
        case .name(let name):
            guard !resolved.isEmpty else { return .deny(apt.rule, .unresolved(host: name)) }
            if let special = resolved.first(where: { $0.addressClass != .public }) {
                return .deny(apt.rule, .specialAddress(host: name, address: special, kind: special.addressClass))
            }
            addresses = resolved
        }
        guard below.hasPrefix("/pool/") else { return .allow(apt.rule, judged: .addresses(addresses)) }
        guard let file = aptPoolFile(host: raw, port: port, path: path) else {
            return .deny(apt.rule, .malformedCall("\(quoted(path)) under the mirror's pool/ is not a package file NAME_VERSION_ARCH.deb"))
        }
        let decision = judgeInstall(.apt, name: file.name, version: "")
        guard decision.isAllowed else { return decision }
        return .allow(decision.rule, judged: .addresses(addresses))
    }
}
