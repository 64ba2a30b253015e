import FoundationEssentials
import Glibc
import POSIX

/// Root file system images, kept by content: under `root` (default $MOMIN_CACHE/images),
///
///     sha256/<hex>.ext4   the image, read-only (0444), named by its SHA-256
///     sha256/<hex>.json   its manifest; an image counts as present only once this exists
///     names.json          name → digest, replaced atomically
///     lock                flock(2)ed while the store changes
///     tmp/<pid>-<n>/      builds in progress, renamed into sha256/ when done
///
/// Writers take the lock; readers need none, as every file is replaced by rename(2).
public struct ImageStore: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    /// $MOMIN_CACHE/images, else $HOME/.cache/momin/images (as Scripts/lib/common.sh and the
    /// guest image place the cache).
    public static func defaultRoot(environment: [String: String]) -> String {
        if let cache = environment["MOMIN_CACHE"], !cache.isEmpty { return absolute(cache) + "/images" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "/root"
        return home + "/.cache/momin/images"
    }

    public var imagesDirectory: String { root + "/sha256" }
    public var namesPath: String { root + "/names.json" }
    var lockPath: String { root + "/lock" }
    var temporaryDirectory: String { root + "/tmp" }

    public func imagePath(_ digest: ImageDigest) -> String { imagesDirectory + "/" + digest.hex + ".ext4" }
    public func manifestPath(_ digest: ImageDigest) -> String { imagesDirectory + "/" + digest.hex + ".json" }

    // MARK: Reading

    /// The manifest of an image in the store.
    public func manifest(_ digest: ImageDigest) throws(ImageError) -> ImageManifest {
        let path = manifestPath(digest)
        guard access(path, F_OK) == 0 else { throw .badInput("no image \(digest) in \(root)") }
        let manifest = try ImageManifest.load(path)
        guard manifest.digest == digest.description else {
            throw .failed("image manifest \(path) is damaged: it describes \(manifest.digest.prefix(80))")
        }
        return manifest
    }

    /// Every image with a manifest, by digest; a manifest that cannot be read is a problem
    /// named in `damaged`, not a reason to hide the others.
    public func list() -> (images: [ImageManifest], damaged: [ImageError]) {
        guard let names = try? ImageTree.entries(imagesDirectory) else { return ([], []) }
        var images: [ImageManifest] = []
        var damaged: [ImageError] = []
        for name in names where name.hasSuffix(".json") {
            guard let digest = ImageDigest(String(name.dropLast(5))) else { continue }
            do { images.append(try manifest(digest)) } catch { damaged.append(error) }
        }
        return (images, damaged)
    }

    /// Name → digest. No index yet is an empty one.
    public func names() throws(ImageError) -> [String: ImageDigest] {
        let bytes: [UInt8]
        do { bytes = try FileIO.readFile(namesPath, limit: NameIndex.byteLimit) } catch {
            if error.errno == ENOENT { return [:] }
            if error.errno == EFBIG { throw .failed("image index \(namesPath) is damaged: over \(NameIndex.byteLimit) bytes") }
            throw .failed("cannot read image index \(namesPath): \(error.reason)")
        }
        return try NameIndex.decode(bytes, path: namesPath)
    }

    /// The image `reference` means: a name first, then a digest (`sha256:HEX`, HEX, or a prefix
    /// of at least 4 hex digits that only one image has).
    public func resolve(_ reference: String) throws(ImageError) -> ImageDigest {
        if let digest = try names()[reference] { return digest }
        var hex = reference.hasPrefix("sha256:") ? String(reference.dropFirst(7)) : reference
        hex = hex.lowercased()
        guard hex.utf8.count >= 4, hex.utf8.count <= 64, hex.utf8.allSatisfy(\.isHexDigit) else {
            throw .badInput("no image named \(reference) in \(root)")
        }
        let present = ((try? ImageTree.entries(imagesDirectory)) ?? []).compactMap { name -> ImageDigest? in
            name.hasSuffix(".json") ? ImageDigest(String(name.dropLast(5))) : nil
        }
        let matching = present.filter { $0.hex.hasPrefix(hex) }
        guard !matching.isEmpty else { throw .badInput("no image named or with digest \(reference) in \(root)") }
        guard matching.count == 1 else {
            throw .badInput("digest prefix \(reference) is ambiguous: \(matching.map(\.short).joined(separator: ", "))")
        }
        return matching[0]
    }

    /// The image built before from the same inputs, if it is still whole (manifest and file).
    public func reusable(inputsKey: String) -> ImageManifest? {
        list().images.filter { $0.inputsKey == inputsKey && access(imagePath($0.imageDigest), R_OK) == 0 }
            .max { $0.builtAt < $1.builtAt }
    }

    // MARK: Changing

    /// Moves a finished image (`image`, a file in this store's tmp/) into place with its manifest,
    /// and points `name` at it. An image with the same digest already there is kept (the bytes
    /// are the same) and gets the new manifest.
    public func add(image: String, manifest: ImageManifest, name: String) throws(ImageError) {
        try DebianImageRequest.validateName(name)
        try makeDirectories()
        try withLock { () throws(ImageError) in
            let digest = manifest.imageDigest
            let target = imagePath(digest)
            if access(target, F_OK) == 0 {
                unlink(image)
            } else {
                // On disk before any manifest can point at it.
                let fd = retryingEINTR { open(image, O_RDONLY | O_CLOEXEC) }
                guard fd >= 0 else { throw .failed("cannot open \(image): \(describeErrno())") }
                let synced = fsync(fd) == 0
                let reason = describeErrno()
                close(fd)
                guard synced else { throw .failed("cannot sync \(image): \(reason)") }
                guard chmod(image, 0o444) == 0 else { throw .failed("cannot make \(image) read-only: \(describeErrno())") }
                guard rename(image, target) == 0 else { throw .failed("cannot move \(image) to \(target): \(describeErrno())") }
            }
            try Self.writeAtomically(manifestPath(digest), manifest.encoded())
            var index = try names()
            index[name] = digest
            try Self.writeAtomically(namesPath, NameIndex.encode(index))
        }
    }

    /// Points `name` at an image already in the store.
    public func setName(_ name: String, to digest: ImageDigest) throws(ImageError) {
        try DebianImageRequest.validateName(name)
        try makeDirectories()
        try withLock { () throws(ImageError) in
            _ = try manifest(digest)
            var index = try names()
            guard index[name] != digest else { return }
            index[name] = digest
            try Self.writeAtomically(namesPath, NameIndex.encode(index))
        }
    }

    /// What `remove` did.
    public enum Removal: Equatable, Sendable {
        /// The image is gone (file and manifest), with these names.
        case removed(ImageDigest, names: [String])
        /// Only the name is gone: other names still point at the image, which stays.
        case unnamed(String, ImageDigest, stillNamedBy: [String])
    }

    /// `rm NAME`: the name goes, and the image with it unless another name still points at it.
    /// `rm DIGEST`: the image goes, refused while a name points at it unless `force`, which
    /// removes those names too. The manifest goes before the file, so that no manifest is
    /// ever left without its image.
    public func remove(_ reference: String, force: Bool) throws(ImageError) -> Removal {
        try withLock { () throws(ImageError) -> Removal in
            var index = try names()
            let digest = try resolve(reference)
            let naming = index.filter { $0.value == digest }.map(\.key).sorted()
            let byName = index[reference] != nil
            if byName {
                let others = naming.filter { $0 != reference }
                if !others.isEmpty {
                    index[reference] = nil
                    try Self.writeAtomically(namesPath, NameIndex.encode(index))
                    return .unnamed(reference, digest, stillNamedBy: others)
                }
            } else if !naming.isEmpty && !force {
                throw .badInput("image \(digest.short) is named \(naming.joined(separator: ", ")): remove the names, or give --force to remove them with it")
            }
            for name in naming { index[name] = nil }
            if !naming.isEmpty { try Self.writeAtomically(namesPath, NameIndex.encode(index)) }
            for path in [manifestPath(digest), imagePath(digest)] where unlink(path) != 0 && errno != ENOENT {
                throw .failed("cannot remove \(path): \(describeErrno())")
            }
            FileIO.syncDirectory(of: imagePath(digest))
            return .removed(digest, names: naming)
        }
    }

    // MARK: Builds in progress

    /// A new directory under tmp/ for one build, named after this process. Mode 0755, so
    /// that apt can download as its own user _apt where the directories above let it.
    public func makeBuildDirectory() throws(ImageError) -> String {
        try makeDirectories()
        for attempt in 0..<1000 {
            let path = temporaryDirectory + "/\(getpid())-\(attempt)"
            if mkdir(path, 0o755) == 0 { return path }
            if errno != EEXIST { throw .failed("cannot create \(path): \(describeErrno())") }
        }
        throw .failed("cannot create a build directory in \(temporaryDirectory)")
    }

    /// Removes the build directories of processes that are gone (a build killed outright);
    /// what it could not remove, because something is still mounted in it.
    public func removeAbandonedBuilds() -> [String] {
        var left: [String] = []
        for name in (try? ImageTree.entries(temporaryDirectory)) ?? [] {
            guard let pid = Int32(name.prefix { $0 != "-" }), pid > 0, kill(pid, 0) != 0, errno == ESRCH else { continue }
            left += removeBuildDirectory(temporaryDirectory + "/" + name)
        }
        return left
    }

    /// Removes one build directory, never entering a file system mounted inside it; the mount
    /// points left.
    @discardableResult
    public func removeBuildDirectory(_ path: String) -> [String] {
        let mounted = ImageTree.mounts(under: path)
        if !mounted.isEmpty { return mounted }
        return (try? ImageTree.remove(path)) ?? [path]
    }

    // MARK: Files

    func makeDirectories() throws(ImageError) {
        var partial = ""
        for component in root.split(separator: "/") {
            partial += "/" + component
            if mkdir(partial, 0o755) != 0 && errno != EEXIST { throw .failed("cannot create \(partial): \(describeErrno())") }
        }
        for directory in [imagesDirectory, temporaryDirectory] where mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw .failed("cannot create \(directory): \(describeErrno())")
        }
    }

    /// Runs `body` holding the store's lock (flock, exclusive; waits for another writer).
    func withLock<T>(_ body: () throws(ImageError) -> T) throws(ImageError) -> T {
        try makeDirectories()
        let fd = retryingEINTR { open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644) }
        guard fd >= 0 else { throw .failed("cannot open \(lockPath): \(describeErrno())") }
        defer { close(fd) }
        guard retryingEINTR({ flock(fd, LOCK_EX) }) == 0 else { throw .failed("cannot lock \(lockPath): \(describeErrno())") }
        return try body()
    }

    /// Writes `bytes` to a new file beside `path`, syncs it, and renames it over `path`: a
    /// reader sees the old file or the new one, whole.
    static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws(ImageError) {
        let temporary = path + ".new-\(getpid())"
        let fd = retryingEINTR { open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
        guard fd >= 0 else { throw .failed("cannot write \(temporary): \(describeErrno())") }
        var failure: String?
        do { try FileIO.writeAll(fd, bytes) } catch { failure = error.reason }
        if failure == nil && fsync(fd) != 0 { failure = describeErrno() }
        close(fd)
        if let failure {
            unlink(temporary)
            throw .failed("cannot write \(temporary): \(failure)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = describeErrno()
            unlink(temporary)
            throw .failed("cannot replace \(path): \(reason)")
        }
        FileIO.syncDirectory(of: path)
    }

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        guard let directory = getcwd(nil, 0) else { return path }
        defer { free(directory) }
        return String(cString: directory) + "/" + path
    }
}

/// names.json: `{"names": {"NAME": "sha256:HEX", ...}, "schema": 1}`.
enum NameIndex {
    static let byteLimit = 1 << 20

    struct File: Codable {
        var schema: Int
        var names: [String: String]
    }

    static func encode(_ index: [String: ImageDigest]) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try! encoder.encode(File(schema: 1, names: index.mapValues(\.description)))) + [0x0a]
    }

    static func decode(_ bytes: [UInt8], path: String) throws(ImageError) -> [String: ImageDigest] {
        guard bytes.count <= byteLimit else { throw .failed("image index \(path) is damaged: over \(byteLimit) bytes") }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: Data(bytes)) } catch {
            throw .failed("image index \(path) is damaged: \(describe(error))")
        }
        guard file.schema == 1 else { throw .failed("image index \(path) is damaged: schema \(file.schema), expected 1") }
        var index: [String: ImageDigest] = [:]
        for (name, text) in file.names {
            do { try DebianImageRequest.validateName(name) } catch { throw .failed("image index \(path) is damaged: \(error.message)") }
            guard text.hasPrefix("sha256:"), let digest = ImageDigest(text) else {
                throw .failed("image index \(path) is damaged: \(name) points at '\(text.prefix(80))', not sha256:<64 hex digits>")
            }
            index[name] = digest
        }
        return index
    }
}
