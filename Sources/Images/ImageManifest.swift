import FoundationEssentials
import Glibc
import POSIX

/// What the store says about one image, kept beside it as JSON (`sha256/<hex>.json`): how it
/// was made, from exactly which packages or which imported image, and its size and digest.
/// Schema 2 added `imported` (kind "import"); schema 1 manifests, all kind "debian", still load.
public struct ImageManifest: Codable, Equatable, Sendable {
    public static let schemaVersion = 2
    /// A manifest file over this is refused unread: a real one is a few tens of KiB.
    public static let byteLimit = 1 << 20

    public var schema: Int
    /// `sha256:HEX` of the image file.
    public var digest: String
    /// The name it was built as (`momin image ls` shows the names it has now).
    public var name: String
    /// "debian" (`image build debian`) or "import" (`image import`; the Debian fields are empty).
    public var kind: String
    public var suite: String
    public var variant: String
    public var architecture: String
    public var sources: [String]
    /// The packages asked for beyond the variant.
    public var requested: [String]
    /// Every package installed in it, with the version dpkg-query reports from inside the tree.
    public var packages: [ImagePackage]
    public var mmdebstrap: String
    public var e2fsprogs: String
    public var sourceDateEpoch: Int
    public var filesystemUUID: String
    /// The image file's size, and what the tree's files, directories and links took of it.
    public var sizeBytes: UInt64
    public var treeBytes: UInt64
    public var inodes: Int
    /// When and in how long it was built (RFC 3339, UTC; seconds).
    public var builtAt: String
    public var buildSeconds: Double
    /// `DebianImageRequest.inputsKey`: a build with the same key reuses this image.
    public var inputsKey: String
    /// Kind "import": what was imported and what was neutralised; absent for "debian".
    public var imported: ImportedImage?

    public init(digest: ImageDigest, name: String, suite: String, variant: String, architecture: String, sources: [String],
                requested: [String], packages: [ImagePackage], tools: ToolVersions, sourceDateEpoch: Int, filesystemUUID: String,
                sizeBytes: UInt64, treeBytes: UInt64, inodes: Int, builtAt: String, buildSeconds: Double, inputsKey: String) {
        schema = Self.schemaVersion
        self.digest = digest.description
        self.name = name
        kind = "debian"
        self.suite = suite
        self.variant = variant
        self.architecture = architecture
        self.sources = sources
        self.requested = requested
        self.packages = packages
        mmdebstrap = tools.mmdebstrap
        e2fsprogs = tools.e2fsprogs
        self.sourceDateEpoch = sourceDateEpoch
        self.filesystemUUID = filesystemUUID
        self.sizeBytes = sizeBytes
        self.treeBytes = treeBytes
        self.inodes = inodes
        self.builtAt = builtAt
        self.buildSeconds = buildSeconds
        self.inputsKey = inputsKey
    }

    /// An imported image's manifest: no suite, packages or mmdebstrap.
    public static func imported(digest: ImageDigest, name: String, source: ImportedImage, e2fsprogs: String, filesystemUUID: String,
                                sizeBytes: UInt64, treeBytes: UInt64, inodes: Int, builtAt: String, buildSeconds: Double,
                                inputsKey: String) -> ImageManifest {
        var manifest = ImageManifest(
            digest: digest, name: name, suite: "", variant: "", architecture: source.architecture, sources: [], requested: [], packages: [],
            tools: ToolVersions(mmdebstrap: "", e2fsprogs: e2fsprogs), sourceDateEpoch: DebianImageRequest.sourceDateEpoch,
            filesystemUUID: filesystemUUID, sizeBytes: sizeBytes, treeBytes: treeBytes, inodes: inodes, builtAt: builtAt,
            buildSeconds: buildSeconds, inputsKey: inputsKey)
        manifest.kind = "import"
        manifest.imported = source
        return manifest
    }

    /// The digest, known to parse (`decode` checks it).
    public var imageDigest: ImageDigest { ImageDigest(digest)! }

    /// Two-space indented JSON, keys sorted, a final newline.
    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings, numbers and arrays cannot fail.
        return Array(try! encoder.encode(self)) + [0x0a]
    }

    /// A manifest from `bytes` (the file at `path`, for messages), refused past the size limit,
    /// when it is not JSON of this shape, or when a field is out of range.
    public static func decode(_ bytes: [UInt8], path: String) throws(ImageError) -> ImageManifest {
        guard bytes.count <= byteLimit else { throw .failed("image manifest \(path) is damaged: over \(byteLimit) bytes") }
        let manifest: ImageManifest
        do { manifest = try JSONDecoder().decode(ImageManifest.self, from: Data(bytes)) } catch {
            throw .failed("image manifest \(path) is damaged: \(describe(error))")
        }
        func damaged(_ why: String) -> ImageError { .failed("image manifest \(path) is damaged: \(why)") }
        guard (1...schemaVersion).contains(manifest.schema) else { throw damaged("schema \(manifest.schema), expected 1 to \(schemaVersion)") }
        let consistent = manifest.kind == "debian" ? manifest.imported == nil
            : manifest.kind == "import" && manifest.imported != nil && manifest.schema >= 2
        guard consistent else { throw damaged("kind '\(manifest.kind.prefix(40))' does not match its fields (imported is for kind import only)") }
        guard ImageDigest(manifest.digest) != nil, manifest.digest.hasPrefix("sha256:") else {
            throw damaged("digest '\(manifest.digest.prefix(80))' is not sha256:<64 hex digits>")
        }
        do { try DebianImageRequest.validateName(manifest.name) } catch { throw damaged(error.message) }
        guard manifest.sizeBytes > 0, manifest.sizeBytes % UInt64(ImageSize.blockSize) == 0 else {
            throw damaged("size \(manifest.sizeBytes) is not a whole number of 4 KiB blocks")
        }
        guard manifest.inputsKey.utf8.count == 64, manifest.inputsKey.utf8.allSatisfy(\.isHexDigit) else {
            throw damaged("inputsKey is not 64 hex digits")
        }
        return manifest
    }

    /// The manifest file at `path`, read no further than the limit allows.
    public static func load(_ path: String) throws(ImageError) -> ImageManifest {
        let bytes: [UInt8]
        do { bytes = try FileIO.readFile(path, limit: byteLimit) } catch {
            if error.errno == EFBIG { throw .failed("image manifest \(path) is damaged: over \(byteLimit) bytes") }
            throw .failed("cannot read image manifest \(path): \(error.reason)")
        }
        return try decode(bytes, path: path)
    }
}

/// Where an imported image came from (`momin image import`), for its manifest.
public struct ImportedImage: Codable, Equatable, Sendable {
    /// "docker-archive" (`docker save`), "oci-archive" (a tar of an OCI layout) or "oci-layout" (a directory).
    public var format: String
    /// `sha256:HEX` of the file imported; for a layout directory, of its image manifest.
    public var source: String
    /// The OCI image manifest's digest (nil for a docker archive, which has none).
    public var manifest: String?
    public var config: String
    public var architecture: String
    /// Each layer's digest, bottom first: the blob's (OCI) or the uncompressed tar's (docker's diff_ids).
    public var layers: [String]
    /// Uncompressed tar bytes and entries read over all layers.
    public var layerBytes: UInt64
    public var entries: Int
    public var neutralised: Neutralised

    public init(format: String, source: String, manifest: String?, config: String, architecture: String, layers: [String],
                layerBytes: UInt64, entries: Int, neutralised: Neutralised) {
        self.format = format
        self.source = source
        self.manifest = manifest
        self.config = config
        self.architecture = architecture
        self.layers = layers
        self.layerBytes = layerBytes
        self.entries = entries
        self.neutralised = neutralised
    }
}

/// A decoding error as a short phrase: which field, and what was wrong.
func describe(_ error: any Error) -> String {
    guard let error = error as? DecodingError else { return "not JSON of the expected shape" }
    func at(_ path: [any CodingKey]) -> String {
        let names = path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
        return names.isEmpty ? "the top level" : names.joined(separator: ".")
    }
    switch error {
    case .dataCorrupted(let context): return context.codingPath.isEmpty ? "not valid JSON (truncated or corrupt)" : "\(at(context.codingPath)) is corrupt"
    case .keyNotFound(let key, let context): return "field \(at(context.codingPath + [key])) is missing"
    case .typeMismatch(_, let context): return "field \(at(context.codingPath)) has the wrong type"
    case .valueNotFound(_, let context): return "field \(at(context.codingPath)) is null"
    @unknown default: return "not JSON of the expected shape"
    }
}
