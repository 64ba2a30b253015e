import Crypto
import Glibc
import Merkle
import PackageIndex
import Policy
import POSIX
import TLS

/// Settings of package installs; the defaults are what momin uses.
public struct PackageConfiguration: Sendable {
    public var connectTimeout: Double = 10
    /// How long the index may go without sending a byte.
    public var idleTimeout: Double = 60
    /// The largest wheel fetched.
    public var maximumFileBytes: UInt64 = 512 << 20
    /// The most bytes of wheels one install fetches.
    public var maximumInstallBytes: UInt64 = 1 << 30
    /// Whose certificates an https index's must chain to (tests give a file).
    public var trust: TLSTrust = .system

    public init() {}
}

/// The host's client of the simple repository a policy names (PEP 503 HTML, PEP 691 JSON):
/// project pages and PEP 658 core metadata for the resolver, wheels for the install. It asks
/// the index's own origin, and other origins only over https (a page's files may live on
/// another host, as PyPI's do); every body is bounded before it is kept.
final class IndexClient: PackageSource {
    let index: BaseURL
    let get: HTTPGet
    let configuration: PackageConfiguration

    /// JSON first (PEP 691, "Version + Format Selection"), HTML as PEP 503 serves it.
    static let pageAccept = "\(SimpleIndex.jsonMediaType), \(SimpleIndex.htmlMediaType);q=0.2, text/html;q=0.1"

    init(index: BaseURL, resolver: any HostResolver, configuration: PackageConfiguration) {
        self.index = index
        self.configuration = configuration
        get = HTTPGet(resolver: resolver, trust: configuration.trust, connectTimeout: configuration.connectTimeout,
                      idleTimeout: configuration.idleTimeout)
    }

    /// The index's own origin, or any over https: a plain http index does not send the host to
    /// other plain http servers.
    func mayFetch(_ target: HTTPGet.Target) -> Bool {
        target.origin.scheme == .https
            || (target.origin.scheme == index.scheme && target.origin.host == index.host && target.origin.port == index.port)
    }

    func target(_ text: String, of what: String) throws(ResolutionFailure) -> HTTPGet.Target {
        switch HTTPGet.Target.parse(text) {
        case .failure(let problem): throw .badIndex("the URL of \(what), \(text), \(problem)")
        case .success(let target):
            guard mayFetch(target) else {
                throw .badIndex("\(what) is at \(text): plain http outside the index's own \(index.scheme.rawValue)://\(index.authority) is not fetched")
            }
            return target
        }
    }

    func page(project: String) throws(ResolutionFailure) -> ProjectPage {
        let url = try target("\(index)/\(project)/", of: "the page of \(project)")
        var bytes: [UInt8] = []
        let response: HTTPGet.Response
        do {
            response = try get.fetch(url, accept: Self.pageAccept, limit: UInt64(SimpleIndex.maximumPageBytes), mayFollow: mayFetch) { bytes += $0 }
        } catch {
            throw .unreachable("\(url): \(error)")
        }
        if response.status == 404 { throw .noMatch(name: project, why: "the index has no project \(project) (404 at \(response.url))") }
        guard response.status == 200 else { throw .unreachable("\(response.url) answered HTTP \(response.status)") }
        let json = response.contentType.map { $0.lowercased().hasPrefix(SimpleIndex.jsonMediaType) } ?? false
        do {
            return json ? try SimpleIndex.projectPage(json: bytes, url: response.url.description)
                : try SimpleIndex.projectPage(html: bytes, url: response.url.description)
        } catch {
            throw .badIndex("the page of \(project) at \(response.url): \(error)")
        }
    }

    /// PEP 658: the metadata file beside the wheel, checked against its hash when the page gives
    /// one. A wheel whose metadata is not served is refused rather than downloaded to read it.
    func metadata(of file: DistributionFile) throws(ResolutionFailure) -> CoreMetadata {
        guard let hashes = file.coreMetadata else {
            throw .badIndex("\(file.filename): the index serves no core metadata beside it (PEP 658), where the host reads a wheel's dependencies")
        }
        let url = try target(file.url + ".metadata", of: "the metadata of \(file.filename)")
        var hasher = SHA256()
        var bytes: [UInt8] = []
        let response: HTTPGet.Response
        do {
            response = try get.fetch(url, accept: "*/*", limit: UInt64(CoreMetadata.maximumBytes), mayFollow: mayFetch) {
                hasher.update(data: $0)
                bytes += $0
            }
        } catch {
            throw .unreachable("\(url): \(error)")
        }
        guard response.status == 200 else { throw .unreachable("\(response.url) answered HTTP \(response.status)") }
        if let expected = hashes["sha256"] {
            let got = Hex.encode(hasher.finalize())
            guard got == expected else { throw .badIndex("the metadata of \(file.filename) has SHA-256 \(got), the page says \(expected)") }
        }
        do { return try CoreMetadata(parsing: bytes) } catch { throw .badIndex("the metadata of \(file.filename): \(error)") }
    }

    /// Fetches `package`'s wheel into `fd`, at most `limit` bytes; its size and SHA-256.
    func download(_ package: ResolvedPackage, to fd: Int32, limit: UInt64) throws(BrainFailure) -> (size: UInt64, sha256: MerkleHash) {
        let url: HTTPGet.Target
        do { url = try target(package.file.url, of: package.file.filename) } catch { throw BrainFailure(error.description) }
        var hasher = SHA256()
        let response = try get.fetch(url, accept: "application/octet-stream, */*", limit: limit, mayFollow: mayFetch) { piece throws(BrainFailure) in
            hasher.update(data: piece)
            do { try FileIO.writeAll(fd, piece) } catch { throw BrainFailure("writing \(package.file.filename) on the host: \(error)") }
        }
        guard response.status == 200 else { throw BrainFailure("\(response.url) answered HTTP \(response.status)") }
        return (response.received, MerkleHash(bytes: Array(hasher.finalize()))!)
    }
}
