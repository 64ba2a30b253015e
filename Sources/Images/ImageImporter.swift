import Glibc
import POSIX

/// What `momin image import` is asked for.
public struct ImageImportRequest: Equatable, Sendable {
    /// A `docker save` archive, a tar of an OCI image layout, or a layout directory.
    public var path: String
    public var name: String
    /// Uncompressed tar bytes (headers, data, padding) over all layers, and entries.
    public var maxBytes: UInt64
    public var maxEntries: Int

    public static let defaultMaxBytes: UInt64 = 8 << 30
    public static let defaultMaxEntries = 1_000_000
    /// Changes whenever the importer would make other bytes from the same file.
    public static let recipeVersion = 1

    public init(path: String, name: String? = nil, maxBytes: UInt64 = defaultMaxBytes, maxEntries: Int = defaultMaxEntries) {
        self.path = path
        self.name = name ?? Self.defaultName(for: path)
        self.maxBytes = maxBytes
        self.maxEntries = maxEntries
    }

    /// The file's name without its directory and `.tar`, lowercased, other characters as `-`;
    /// "imported" when nothing is left.
    public static func defaultName(for path: String) -> String {
        var base = String(path.split(separator: "/").last ?? "")
        for suffix in [".tar", ".oci"] where base.hasSuffix(suffix) { base = String(base.dropLast(suffix.count)) }
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789._-")
        var name = String(base.lowercased().map { allowed.contains($0) ? $0 : "-" }.prefix(64))
        while let first = name.first, !(first.isLetter || first.isNumber) { name.removeFirst() }
        return name.isEmpty ? "imported" : name
    }

    /// The key a later import of the same source finds this one by: the source's SHA-256, the
    /// recipe, the fixed time and e2fsprogs' version.
    public func inputsKey(source: String, e2fsprogs: String) -> String {
        sha256Hex(["momin image recipe \(Self.recipeVersion)", "kind import", "source \(source)",
                   "epoch \(DebianImageRequest.sourceDateEpoch)", "e2fsprogs \(e2fsprogs)"].joined(separator: "\n") + "\n")
    }
}

/// `momin image import`: the layers of a local image applied in order to a staging tree in the
/// store's tmp/ (`LayerApplier`), then the same steps as a Debian build (`ImageFinisher`).
extension ImageMaker {
    public func importImage(_ request: ImageImportRequest, rebuild: Bool = false) throws(ImageError) -> Outcome {
        try DebianImageRequest.validateName(request.name)
        let limits = TarLimits(entries: request.maxEntries, bytes: request.maxBytes)
        let paths = try ImageFinisher.locate(ImageFinisher.programs, environment: environment)
        let finisher = ImageFinisher(paths: paths, environment: environment, progress: progress, pendingSignal: pendingSignal)
        let e2fsprogs = try finisher.e2fsprogsVersion()
        let started = MonotonicClock.seconds()
        let archive = try ImageArchive.open(request.path, limits: limits)
        let source: String
        if case .tarball = archive {
            progress?("computing the SHA-256 of \(request.path)")
            source = try ImageDigest.ofFile(request.path).description
        } else {
            source = ""
        }
        let plan = try ImportPlan.make(archive)
        let sourceDigest = source.isEmpty ? plan.manifestDigest ?? plan.configDigest : source
        let key = request.inputsKey(source: sourceDigest, e2fsprogs: e2fsprogs)
        if !rebuild, let found = store.reusable(inputsKey: key) {
            try store.setName(request.name, to: found.imageDigest)
            return .reused(found, path: store.imagePath(found.imageDigest))
        }
        guard geteuid() == 0 else {
            throw .failed("importing an image needs root: the layers' files keep their owners (lchown)")
        }
        _ = store.removeAbandonedBuilds()
        let directory = try store.makeBuildDirectory()
        defer {
            let left = store.removeBuildDirectory(directory)
            if !left.isEmpty { warn("could not remove the build directory \(directory): \(left[0]) is mounted") }
        }
        let tree = directory + "/root"
        guard mkdir(tree, 0o755) == 0 else { throw .failed("cannot create \(tree): \(describeErrno())") }
        let applier = try LayerApplier(root: tree, applyOwnership: true)
        var budget = limits
        var entries = 0
        var bytes: UInt64 = 0
        for (number, layer) in plan.layers.enumerated() {
            if let signal = pendingSignal?() { throw .failed("interrupted by signal \(signal) while applying layers; nothing was kept") }
            let label = "\(request.path): layer \(number + 1) of \(plan.layers.count) (\(layer.name))"
            let window = try archive.window(layer.name)
            if let size = layer.size, size != window.length {
                throw .badInput("\(label) is \(window.length) bytes, its descriptor says \(size)")
            }
            progress?("applying layer \(number + 1) of \(plan.layers.count): \(layer.blobDigest ?? layer.diffID ?? layer.name) "
                + "(\(ImageSize.describe(window.length))\(layer.gzip ? ", gzip" : ""))")
            let blob = BlobDigest(window)
            let read: (diffID: String, bytes: UInt64, entries: Int)
            if layer.gzip {
                read = try Self.apply(try GzipSource(blob, label: label), applier: applier, limits: budget, label: label)
            } else {
                read = try Self.apply(blob, applier: applier, limits: budget, label: label)
            }
            if let expected = layer.blobDigest, blob.digest != expected {
                throw .badInput("\(label) does not match its digest: its SHA-256 is \(blob.digest), the descriptor says \(expected)")
            }
            if let expected = layer.diffID, read.diffID != expected {
                throw .badInput("\(label) does not match the config's diff_id: its tar's SHA-256 is \(read.diffID), the config says \(expected)")
            }
            bytes += read.bytes
            entries += read.entries
            budget.bytes -= min(budget.bytes, read.bytes)
            budget.entries -= min(budget.entries, read.entries)
        }

        let (tally, size) = try finisher.prepare(tree: tree, requested: nil)
        let recipe = Ext4Recipe(inputsKey: key)
        let image = directory + "/image.ext4"
        try finisher.makeImage(recipe: recipe, tree: tree, image: image, size: size, tally: tally, sizeRequested: false, directory: directory)
        progress?("computing the image's SHA-256")
        let digest = try ImageDigest.ofFile(image)
        let imported = ImportedImage(format: plan.format, source: sourceDigest, manifest: plan.manifestDigest, config: plan.configDigest,
                                     architecture: plan.architecture, layers: plan.layers.map { $0.blobDigest ?? $0.diffID ?? "" },
                                     layerBytes: bytes, entries: entries, neutralised: applier.neutralised)
        let manifest = ImageManifest.imported(
            digest: digest, name: request.name, source: imported, e2fsprogs: e2fsprogs, filesystemUUID: recipe.filesystemUUID,
            sizeBytes: size, treeBytes: tally.bytes, inodes: tally.inodes, builtAt: ImageMaker.now(),
            buildSeconds: ((MonotonicClock.seconds() - started) * 10).rounded() / 10, inputsKey: key)
        try store.add(image: image, manifest: manifest, name: request.name)
        return .made(manifest, path: store.imagePath(digest))
    }

    /// One layer's tar through the applier, then the rest of its stream, so that its digests
    /// cover every byte: the uncompressed tar's SHA-256, its bytes and entries.
    static func apply<Source: ByteSource>(_ source: Source, applier: LayerApplier, limits: TarLimits,
                                          label: String) throws(ImageError) -> (diffID: String, bytes: UInt64, entries: Int) {
        var reader = TarReader(HashingSource(source), limits: limits)
        do {
            try applier.apply(&reader)
            try reader.drain(limit: limits.bytes)
        } catch let error as LayerError {
            switch error {
            case .refused(let refusal): throw .badInput("\(label): \(refusal)")
            case .failed(let why): throw .failed(why)
            }
        } catch let error as TarError {
            throw .badInput("\(label): \(error)")
        } catch {
            throw .failed("\(label): \(error)")
        }
        return (reader.source.digest, reader.consumed, reader.entries)
    }
}

/// A blob's bytes as stored, hashed as they are read (by reference, so that the digest is
/// there after a decompressor or the tar reader has taken them).
final class BlobDigest: ByteSource {
    private var hashing: HashingSource<FileWindow>

    init(_ window: FileWindow) { hashing = HashingSource(window) }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(ImageError) -> Int { try hashing.read(into: buffer) }

    var digest: String { hashing.digest }
}
