/// PEP 440 version specifiers ("Version specifiers", https://peps.python.org/pep-0440/#version-specifiers):
/// one clause, an operator and a version, and what it admits. Pre-release filtering is the
/// set's ("Handling of pre-releases"); a clause alone admits by its operator only.
public struct Specifier: Sendable, Hashable, CustomStringConvertible {
    public enum Operator: String, Sendable, Hashable, CaseIterable {
        /// "Compatible release".
        case compatible = "~="
        /// "Version matching", with `.*` for a prefix match.
        case equal = "=="
        /// "Version exclusion", with `.*` for a prefix.
        case notEqual = "!="
        /// "Inclusive ordered comparison".
        case lessOrEqual = "<="
        case greaterOrEqual = ">="
        /// "Exclusive ordered comparison".
        case less = "<"
        case greater = ">"
        /// "Arbitrary equality": the text, compared without case.
        case arbitrary = "==="
    }

    public let op: Operator
    /// The version named; nil only for `===` with text that is not a version.
    public let version: Version?
    /// `==V.*` or `!=V.*`: V is an epoch and release, matched as a prefix.
    public let isPrefixMatch: Bool
    /// The version as written after `===`; empty for the other operators.
    public let arbitraryText: String

    /// One clause, such as `>= 1.0` or `==2.*`; whitespace around it and after the operator is allowed.
    public init(parsing text: String) throws(PackageIndexError) {
        guard text.utf8.count <= SpecifierSet.maximumBytes else {
            throw PackageIndexError(.specifier, "longer than \(SpecifierSet.maximumBytes) bytes")
        }
        let bytes = Array(ASCII.trimmed(Array(text.utf8)))
        // Longest first: === before ==, <= before <.
        guard let op = [Operator.arbitrary, .compatible, .equal, .notEqual, .lessOrEqual, .greaterOrEqual, .less, .greater].first(where: {
            bytes.starts(with: $0.rawValue.utf8)
        }) else {
            throw PackageIndexError(.specifier, "\(ASCII.quote(bytes)) does not start with ~=, ==, !=, <=, >=, <, > or ===")
        }
        let rest = ASCII.trimmed(bytes.dropFirst(op.rawValue.utf8.count))
        guard !rest.isEmpty else { throw PackageIndexError(.specifier, "no version after \(op.rawValue)") }
        guard rest.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ",") && $0 != UInt8(ascii: ";") }) else {
            throw PackageIndexError(.specifier, "the version \(ASCII.quote(rest)) has spaces, commas, semicolons, control or non-ASCII characters")
        }
        let versionText = String(decoding: rest, as: UTF8.self)
        self.op = op
        switch op {
        case .arbitrary:
            version = try? Version(parsing: versionText)
            isPrefixMatch = false
            arbitraryText = versionText
            return
        case .equal, .notEqual:
            let prefixMatch = rest.count > 2 && rest.suffix(2).elementsEqual(".*".utf8)
            isPrefixMatch = prefixMatch
            if prefixMatch {
                let prefix = try Specifier.version(String(decoding: rest.dropLast(2), as: UTF8.self), op)
                guard !prefix.isPrerelease, !prefix.isPostrelease, !prefix.isLocal else {
                    throw PackageIndexError(.specifier, "\(op.rawValue)\(versionText): a prefix match (.*) names only an epoch and a release")
                }
                version = prefix
            } else {
                version = try Specifier.version(versionText, op)
            }
        case .compatible:
            let parsed = try Specifier.version(versionText, op)
            guard parsed.release.count >= 2 else {
                throw PackageIndexError(.specifier, "~=\(versionText): a compatible release needs at least two release segments")
            }
            guard !parsed.isLocal else { throw PackageIndexError(.specifier, "~=\(versionText): a local version is not allowed here") }
            version = parsed
            isPrefixMatch = false
        case .lessOrEqual, .greaterOrEqual, .less, .greater:
            let parsed = try Specifier.version(versionText, op)
            guard !parsed.isLocal else {
                throw PackageIndexError(.specifier, "\(op.rawValue)\(versionText): a local version is not allowed in an ordered comparison")
            }
            version = parsed
            isPrefixMatch = false
        }
        arbitraryText = ""
    }

    static func version(_ text: String, _ op: Operator) throws(PackageIndexError) -> Version {
        do throws(PackageIndexError) {
            return try Version(parsing: text)
        } catch {
            throw PackageIndexError(.specifier, "after \(op.rawValue): \(error.reason)")
        }
    }

    /// Whether `candidate` satisfies this clause by its operator ("Version specifiers"); a set
    /// also filters pre-releases.
    public func admits(_ candidate: Version) -> Bool {
        // "Arbitrary equality" compares text, whether or not it is a version.
        if op == .arbitrary { return ASCII.same(ASCII.lowercased(candidate.description), ASCII.lowercased(arbitraryText)) }
        guard let version else { return false }
        switch op {
        case .arbitrary:
            return false  // answered above
        case .compatible:
            // "Compatible release": >= V and == V's release without its last segment, as a prefix.
            return candidate.publicVersion >= version
                && Specifier.hasPrefix(candidate, epoch: version.epoch, release: version.release.dropLast())
        case .equal:
            return matches(candidate, version)
        case .notEqual:
            return !matches(candidate, version)
        case .lessOrEqual:
            return candidate.publicVersion <= version
        case .greaterOrEqual:
            return candidate.publicVersion >= version
        case .less:
            // "<V MUST NOT allow a pre-release of the specified version unless the specified
            // version is itself a pre-release": V's pre-releases are those from V.dev0 up.
            guard candidate < version else { return false }
            let earliestPrerelease = Version(epoch: version.epoch, release: version.release, pre: nil, post: version.post, dev: 0, local: [])
            return version.isPrerelease || !candidate.isPrerelease || candidate < earliestPrerelease
        case .greater:
            // ">V MUST NOT allow a post-release of the given version unless V itself is a post
            // release" (a post-release of V: V once its post and dev parts are dropped), and ">V
            // MUST NOT match a local version of the specified version" (its public part is V).
            guard candidate > version else { return false }
            let postOf = Version(epoch: candidate.epoch, release: candidate.release, pre: candidate.pre, post: nil, dev: nil, local: [])
            if !version.isPostrelease && candidate.isPostrelease && postOf == version { return false }
            return !candidate.isLocal || candidate.publicVersion != version
        }
    }

    /// "Version matching": a prefix with the candidate's release padded with zeros; otherwise
    /// equality, the candidate's local label ignored when V has none.
    func matches(_ candidate: Version, _ version: Version) -> Bool {
        if isPrefixMatch { return Specifier.hasPrefix(candidate, epoch: version.epoch, release: version.release[...]) }
        return version.isLocal ? candidate == version : candidate.publicVersion == version
    }

    static func hasPrefix(_ candidate: Version, epoch: UInt64, release: ArraySlice<UInt64>) -> Bool {
        guard candidate.epoch == epoch else { return false }
        for (offset, segment) in release.enumerated() where (offset < candidate.release.count ? candidate.release[offset] : 0) != segment {
            return false
        }
        return true
    }

    /// Whether the clause names a pre-release, which lets its set admit pre-releases
    /// ("Handling of pre-releases"); an exclusion never does.
    public var namesPrerelease: Bool { op != .notEqual && version?.isPrerelease == true }

    public var description: String {
        if op == .arbitrary { return op.rawValue + arbitraryText }
        return op.rawValue + (version?.description ?? "") + (isPrefixMatch ? ".*" : "")
    }
}

/// A comma-separated list of clauses, all of which must hold ("Version specifiers"); empty
/// admits every version.
public struct SpecifierSet: Sendable, Hashable, CustomStringConvertible {
    /// The longest text read; longer is refused before any parsing.
    public static let maximumBytes = 1024
    public static let maximumClauses = 32

    public let specifiers: [Specifier]

    public init(_ specifiers: [Specifier] = []) { self.specifiers = specifiers }

    /// `>=1.0, !=1.3.*, <2`; empty text (or only whitespace) is the empty set.
    public init(parsing text: String) throws(PackageIndexError) {
        guard text.utf8.count <= SpecifierSet.maximumBytes else {
            throw PackageIndexError(.specifier, "longer than \(SpecifierSet.maximumBytes) bytes")
        }
        let bytes = Array(ASCII.trimmed(Array(text.utf8)))
        guard !bytes.isEmpty else {
            specifiers = []
            return
        }
        let clauses = bytes.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
        guard clauses.count <= SpecifierSet.maximumClauses else {
            throw PackageIndexError(.specifier, "more than \(SpecifierSet.maximumClauses) clauses")
        }
        var parsed: [Specifier] = []
        for clause in clauses {
            guard !ASCII.trimmed(clause).isEmpty else { throw PackageIndexError(.specifier, "an empty clause in \(ASCII.quote(bytes))") }
            parsed.append(try Specifier(parsing: String(decoding: clause, as: UTF8.self)))
        }
        specifiers = parsed
    }

    /// Whether some clause names a pre-release, so that pre-releases are admitted.
    public var namesPrerelease: Bool { specifiers.contains { $0.namesPrerelease } }

    /// Whether `version` satisfies every clause. A pre-release is admitted only when
    /// `prereleases` asks for them or a clause names one ("Handling of pre-releases").
    public func contains(_ version: Version, prereleases: Bool) -> Bool {
        if version.isPrerelease && !prereleases && !namesPrerelease { return false }
        return specifiers.allSatisfy { $0.admits(version) }
    }

    /// The versions the set admits, in their order. With `prereleases` nil, pre-releases are
    /// left out unless a clause names one, or unless they are all that satisfy the clauses ("accept
    /// remotely available pre-releases for version specifiers where there is no final or post
    /// release that satisfies the version specifier").
    public func filter(_ versions: [Version], prereleases: Bool? = nil) -> [Version] {
        let satisfying = versions.filter { version in specifiers.allSatisfy { $0.admits(version) } }
        if prereleases == true || namesPrerelease { return satisfying }
        let released = satisfying.filter { !$0.isPrerelease }
        return released.isEmpty && prereleases == nil ? satisfying : released
    }

    public var description: String { specifiers.map(\.description).joined(separator: ",") }
}
