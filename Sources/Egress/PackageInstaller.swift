import Doors
import Gateway
import Glibc
import Merkle
import PackageIndex
import Policy
import POSIX

/// `hands install pip` on the host (docs/hands.md, "Installing packages"): the request is
/// logged and judged, resolved against the policy's index with the host's own client (wheels
/// only: nothing the agent names is built or run on the host), every package it would bring in
/// judged by `packages.pip` before its file is fetched, each wheel logged with its name,
/// version and URL, fetched, checked against the index's SHA-256 and its digest logged, and
/// kept in `staging` for the guest to take and install offline.
///
/// The log holds, under tool `package-install`, the request (`ecosystem=pip` and one
/// `requirement=` line each) and, as its result, the digest of the manifest sent back; under
/// tool `package`, each package with `ecosystem`, `name`, `version`, `file`, `url`, `sha256`
/// (what the index promised) and `required-by`, its result the file's size and SHA-256 as
/// fetched. A package the policy refuses is logged as a denied `package` call, and the whole
/// request fails naming it.
///
/// `hands install apt` is only approved here (`approveApt`): each name judged and logged, the
/// mirrors answered; the guest's apt then fetches through the proxy, which judges and logs
/// each `.deb` (`EgressRelay`, `AgentPolicy.judgeAptMirror`).
public struct PackageInstaller: Sendable {
    public static let requestTool = "package-install"
    public static let packageTool = "package"
    /// The most requirements one request names: the hands call's own bound.
    public static let maximumRequirements = HandsInstall.maxRequirements

    public let session: GovernedSession
    let staging: PackageStaging
    let resolver: any HostResolver
    let configuration: PackageConfiguration
    /// The host's own refusal of every install (a recorded session's), logged as the decision.
    let refusal: Policy.Decision?

    public init(session: GovernedSession, staging: PackageStaging, resolver: any HostResolver,
                configuration: PackageConfiguration = PackageConfiguration(), refusal: Policy.Decision? = nil) {
        self.session = session
        self.staging = staging
        self.resolver = resolver
        self.configuration = configuration
        self.refusal = refusal
    }

    public struct Installed: Sendable, Equatable {
        public let id: String
        /// As the guest is told of them (`InstallManifest`).
        public let files: [InstallManifest.File]

        public var manifest: InstallManifest { InstallManifest(id: id, files: files) }
    }

    public enum Failure: Error, CustomStringConvertible {
        case denied(Policy.Decision, String)
        case invalid(String)
        case failed(String)

        public var description: String {
            switch self {
            case .denied(_, let message), .invalid(let message), .failed(let message): message
            }
        }
    }

    /// `hands install pip REQUIREMENT...`: resolved, judged, fetched, logged and staged.
    public func install(ecosystem name: String, requirements texts: [String]) throws(Failure) -> Installed {
        guard let ecosystem = PackageEcosystem(rawValue: name) else {
            throw .invalid("no package ecosystem \(quoted(name)): pip or apt")
        }
        guard ecosystem == .pip else { throw .invalid("an \(name) install is approved, not installed, by the host (approveApt)") }
        try checkCount(texts)
        var requirements: [Requirement] = []
        for text in texts {
            do { requirements.append(try Requirement(parsing: text)) } catch { throw .invalid("requirement \(quoted(text)): \(error)") }
        }
        return try logged(.pip, requirements.map(\.description)) { () throws(Failure) in
            let installed = try run(requirements)
            return (installed, installed.files.map(\.line))
        }
    }

    /// `hands install apt NAME...`: each name judged by `packages.apt` and the request logged
    /// before the guest's own apt runs; the mirrors it may reach. What apt then fetches, the
    /// dependencies included, the proxy judges file by file (docs/hands.md).
    public func approveApt(_ names: [String]) throws(Failure) -> [String] {
        try checkCount(names)
        for name in names where AgentPolicy.packageName(name, .apt) == nil {
            throw .invalid("\(quoted(name)) is not a Debian package name (lowercase letters, digits, + - ., at least two, starting with a letter or digit)")
        }
        return try logged(.apt, names) { () throws(Failure) in
            guard let apt = session.policy?.packages?.apt else { throw .failed("the policy has no packages.apt section") }
            for name in names where !(session.policy?.evaluate(.installPackage(ecosystem: .apt, name: name, version: ""), resolver: NoPaths()).isAllowed ?? false) {
                throw logRefusal(.apt, name: name, version: "", requiredBy: nil)
            }
            let mirrors = apt.mirrors.map(\.description)
            return (mirrors, mirrors)
        }
    }

    private func checkCount(_ texts: [String]) throws(Failure) {
        guard (1...Self.maximumRequirements).contains(texts.count) else {
            throw .invalid("an install names 1 to \(Self.maximumRequirements) requirements, not \(texts.count)")
        }
    }

    /// The request as one `package-install` call: admitted (the policy's section, or the host's
    /// refusal), then `body`, then its status and the digest of the lines it answers.
    private func logged<T>(_ ecosystem: PackageEcosystem, _ requirements: [String],
                           _ body: () throws(Failure) -> (T, [String])) throws(Failure) -> T {
        let arguments = ["ecosystem=\(ecosystem.rawValue)"] + requirements.map { "requirement=\($0)" }
        let request: UInt64
        do {
            request = try session.admit(.installRequest(ecosystem: ecosystem), tool: Self.requestTool,
                                        arguments: GovernedSession.arguments(lines: arguments)) {
                refusal
            }
        } catch {
            throw Self.failure(error, what: "the install")
        }
        var status: Int64 = 70
        var answer: [UInt8] = []
        defer {
            var result = ResultHasher()
            if !answer.isEmpty { result.add(stream: 1, answer) }
            try? session.finish(request, status: status, result: result, countsAsOutput: false)
        }
        do throws(Failure) {
            let (value, lines) = try body()
            answer = Array(lines.map { $0 + "\n" }.joined().utf8)
            status = 0
            return value
        } catch {
            if case .denied = error { status = 77 }
            throw error
        }
    }

    private func run(_ requirements: [Requirement]) throws(Failure) -> Installed {
        guard let pip = session.policy?.packages?.pip else { throw .failed("the policy has no packages.pip section") }
        let client = IndexClient(index: pip.index, resolver: resolver, configuration: configuration)
        let packages: [ResolvedPackage]
        do {
            packages = try Resolver().resolve(requirements, source: client) { name, version in
                session.policy?.evaluate(.installPackage(ecosystem: .pip, name: name, version: version?.description ?? ""),
                                         resolver: NoPaths()).isAllowed ?? false
            }
        } catch {
            if case .notAllowed(let name, let version, let parent) = error {
                throw logRefusal(.pip, name: name, version: version?.description ?? "", requiredBy: parent)
            }
            throw .failed("resolving \(requirements.map(\.description).joined(separator: " ")): \(error)")
        }
        let (id, directory) = try begin()
        var files: [InstallManifest.File] = []
        var total: UInt64 = 0
        do throws(Failure) {
            for (index, package) in packages.enumerated() {
                let left = configuration.maximumInstallBytes - min(total, configuration.maximumInstallBytes)
                let file = try fetch(package, from: client, to: PackageStaging.path(directory, index),
                                     limit: min(configuration.maximumFileBytes, left))
                total += file.size
                files.append(file)
            }
        } catch {
            PackageStaging.remove(directory, files: packages.count)
            throw error
        }
        staging.keep(id: id, agent: session.agent, directory: directory, sizes: files.map(\.size))
        return Installed(id: id, files: files)
    }

    private func begin() throws(Failure) -> (String, String) {
        do { return try staging.begin() } catch { throw .failed("staging the files: \(error)") }
    }

    /// A package the policy refused while resolving, logged as a denied `package` call.
    private func logRefusal(_ ecosystem: PackageEcosystem, name: String, version: String, requiredBy: String?) -> Failure {
        let arguments = ["ecosystem=\(ecosystem.rawValue)", "name=\(name)", "version=\(version)", "required-by=\(requiredBy ?? "")"]
        do {
            let id = try session.admit(.installPackage(ecosystem: ecosystem, name: name, version: version), tool: Self.packageTool,
                                       arguments: GovernedSession.arguments(lines: arguments))
            // Judged again, the policy allowed it: nothing was fetched, so the call ends failed.
            try? session.finish(id, status: 70, result: ResultHasher(), countsAsOutput: false)
            return .failed("\(name) \(version) was refused while resolving and allowed when logged")
        } catch {
            return Self.failure(error, what: name + (version.isEmpty ? "" : " \(version)") + (requiredBy.map { " (a dependency of \($0))" } ?? ""))
        }
    }

    /// Judges and logs one package, fetches its wheel to `path` and logs its digest.
    private func fetch(_ package: ResolvedPackage, from client: IndexClient, to path: String, limit: UInt64) throws(Failure) -> InstallManifest.File {
        let version = package.version.description
        let arguments = ["ecosystem=pip", "name=\(package.name)", "version=\(version)", "file=\(package.file.filename)",
                         "url=\(package.file.url)", "sha256=\(package.sha256)", "required-by=\(package.requiredBy ?? "")"]
        let id: UInt64
        do {
            id = try session.admit(.installPackage(ecosystem: .pip, name: package.name, version: version), tool: Self.packageTool,
                                   arguments: GovernedSession.arguments(lines: arguments))
        } catch {
            throw Self.failure(error, what: "\(package.name) \(version)")
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            try? session.finishFetched(id, status: 70, received: 0, sha256: Merkle.emptyRoot)
            throw .failed("staging \(package.file.filename): \(describeErrno())")
        }
        defer { close(fd) }
        let fetched: (size: UInt64, sha256: MerkleHash)
        do {
            fetched = try client.download(package, to: fd, limit: limit)
        } catch {
            try? session.finishFetched(id, status: 70, received: 0, sha256: Merkle.emptyRoot)
            throw .failed("fetching \(package.file.filename): \(error)")
        }
        let got = Hex.encode(fetched.sha256.bytes)
        do {
            try session.finishFetched(id, status: got == package.sha256 ? 0 : 65, received: fetched.size, sha256: fetched.sha256)
        } catch {
            throw Self.failure(error, what: "\(package.name) \(version)")
        }
        guard got == package.sha256 else {
            throw .failed("\(package.file.filename) has SHA-256 \(got), but the index says \(package.sha256): not installed")
        }
        return InstallManifest.File(name: package.name, version: version, filename: package.file.filename, size: fetched.size, sha256: got)
    }

    static func failure(_ error: GatewayError, what: String) -> Failure {
        if case .denied(let decision) = error { return .denied(decision, "\(what): \(error)") }
        return .failed("\(what): \(error)")
    }

}

/// Package calls name no paths: the policy never resolves one for them.
struct NoPaths: PathResolver {
    func canonicalPath(_ path: String, followFinalSymlink: Bool) -> String? { nil }
}
