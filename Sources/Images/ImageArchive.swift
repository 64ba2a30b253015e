import Crypto
import FoundationEssentials
import Glibc
import POSIX

/// The files of an image to import, read by name: an OCI image layout directory, or a tar
/// holding one or `docker save`'s output. Nothing is followed: a layout's files are opened
/// component by component with O_NOFOLLOW, and an archive's members are its regular files only.
enum ImageArchive {
    case directory(OpenFile)
    /// The archive, and where each regular member's data lies in it.
    case tarball(OpenFile, members: [String: (offset: UInt64, size: UInt64)])

    /// JSON files (index.json, manifests, configs) over this are refused unread.
    static let jsonLimit = 4 << 20

    /// Opens `path`: a directory as a layout, a file as an archive, whose members are listed once.
    static func open(_ path: String, limits: TarLimits) throws(ImageError) -> ImageArchive {
        let fd = retryingEINTR { Glibc.open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw .badInput("cannot open \(path): \(describeErrno())") }
        let file = OpenFile(fd: fd, path: path)
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .failed("cannot read \(path): \(describeErrno())") }
        if info.st_mode & S_IFMT == S_IFDIR { return .directory(file) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .badInput("\(path) is neither a file nor a directory") }
        var magic = [UInt8](repeating: 0, count: 4)
        let read = magic.withUnsafeMutableBytes { raw in pread(fd, raw.baseAddress, 4, 0) }
        if read >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
            throw .badInput("\(path) is gzip-compressed: decompress it first (gunzip); layers inside may be compressed, the archive not")
        }
        if read == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] { throw .badInput("\(path) is zstd-compressed: decompress it first (unzstd)") }
        var reader = TarReader(FileWindow(file: file, offset: 0, length: UInt64(info.st_size)), limits: limits)
        var members: [String: (offset: UInt64, size: UInt64)] = [:]
        do {
            while let entry = try reader.next() {
                guard entry.kind == .file else { continue }
                let name: [String]
                do { name = try LayerPath.normalize(entry.path).components } catch {
                    throw TarError(entry: entry.path, offset: entry.offset, .badPath(error.why))
                }
                let key = name.joined(separator: "/")
                guard members[key] == nil else { throw ImageError.badInput("\(path): the archive holds \(key) twice") }
                members[key] = (reader.consumed, entry.size)
            }
        } catch let error as TarError {
            throw .badInput("\(path): \(error)")
        } catch let error as ImageError {
            throw error
        } catch {
            throw .failed("\(path): \(error)")
        }
        return .tarball(file, members: members)
    }

    var path: String {
        switch self {
        case .directory(let file), .tarball(let file, _): file.path
        }
    }

    func has(_ name: String) -> Bool {
        switch self {
        case .directory: (try? window(name)) != nil
        case .tarball(_, let members): members[name] != nil
        }
    }

    /// The member or file `name` ("blobs/sha256/HEX"), to be read from its start.
    func window(_ name: String) throws(ImageError) -> FileWindow {
        switch self {
        case .tarball(let file, let members):
            guard let member = members[name] else { throw .badInput("\(file.path) has no \(name)") }
            return FileWindow(file: file, offset: member.offset, length: member.size)
        case .directory(let directory):
            var fd = retryingEINTR { dup(directory.fd) }
            guard fd >= 0 else { throw .failed("cannot dup a descriptor: \(describeErrno())") }
            let parts = name.split(separator: "/").map(String.init)
            for (index, part) in parts.enumerated() {
                let last = index == parts.count - 1
                let next = retryingEINTR { openat(fd, part, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (last ? 0 : O_DIRECTORY)) }
                let reason = errno
                close(fd)
                guard next >= 0 else {
                    if reason == ELOOP { throw .badInput("\(directory.path)/\(name) is reached through a symlink: refused") }
                    throw .badInput("\(directory.path) has no \(name): \(describeErrno(reason))")
                }
                fd = next
            }
            let file = OpenFile(fd: fd, path: directory.path + "/" + name)
            var info = stat()
            guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { throw .badInput("\(file.path) is not a regular file") }
            return FileWindow(file: file, offset: 0, length: UInt64(info.st_size))
        }
    }

    /// A small file whole, refused over `jsonLimit` before it is read.
    func bytes(_ name: String) throws(ImageError) -> [UInt8] {
        var window = try window(name)
        guard window.length <= UInt64(Self.jsonLimit) else {
            throw .badInput("\(path): \(name) is \(window.length) bytes, over the \(Self.jsonLimit)-byte limit for JSON")
        }
        return try window.read(count: Int(window.length))
    }

    func json<T: Decodable>(_ type: T.Type, _ name: String) throws(ImageError) -> T {
        try Self.decode(type, try bytes(name), what: "\(path): \(name)")
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], what: String) throws(ImageError) -> T {
        do { return try JSONDecoder().decode(type, from: Data(bytes)) } catch { throw .badInput("\(what) is not what it should be: \(describe(error))") }
    }
}

/// The image-spec documents an import reads (OCI image-spec image-layout.md, image-index.md,
/// manifest.md, config.md; Docker's `docker save` manifest.json).
enum ImageDocuments {
    struct Layout: Decodable { var imageLayoutVersion: String }
    struct Platform: Decodable { var architecture: String; var os: String }
    struct Descriptor: Decodable {
        var mediaType: String
        var digest: String
        var size: Int64
        var platform: Platform?
    }
    struct Index: Decodable { var manifests: [Descriptor] }
    struct Manifest: Decodable {
        var config: Descriptor
        var layers: [Descriptor]
    }
    struct Config: Decodable {
        struct RootFS: Decodable { var diff_ids: [String] }
        var architecture: String
        var os: String
        var rootfs: RootFS?
    }
    struct DockerEntry: Decodable {
        var Config: String
        var Layers: [String]
    }

    static let indexTypes: Set<String> = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"]
    static let manifestTypes: Set<String> = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"]

    /// A layer media type → whether it is gzip-compressed; zstd and anything else are refused.
    static func gzipped(_ mediaType: String) throws(ImageError) -> Bool {
        switch mediaType {
        case "application/vnd.oci.image.layer.v1.tar", "application/vnd.docker.image.rootfs.diff.tar",
             "application/vnd.oci.image.layer.nondistributable.v1.tar":
            return false
        case "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip",
             "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
            return true
        default:
            if mediaType.hasSuffix("+zstd") { throw .badInput("layer media type \(mediaType): zstd-compressed layers are not supported (only plain tar and gzip)") }
            throw .badInput("layer media type \(mediaType.prefix(100)) is not a tar layer")
        }
    }

    /// `sha256:` and 64 lowercase hex digits (descriptor.md, "Digests"); other algorithms are refused.
    static func checkDigest(_ digest: String, what: String) throws(ImageError) -> String {
        guard digest.hasPrefix("sha256:"), ImageDigest(digest) != nil, digest == digest.lowercased() else {
            throw .badInput("\(what) digest '\(digest.prefix(80))' is not sha256:<64 lowercase hex digits>")
        }
        return digest
    }
}

/// What to apply, found in an archive: the layers in order, each with how to read and check it.
struct ImportPlan {
    struct Layer {
        /// Its name in the archive or layout.
        var name: String
        var gzip: Bool
        /// The blob's digest (OCI descriptors), checked over the bytes as stored.
        var blobDigest: String?
        /// The uncompressed tar's digest (the config's rootfs.diff_ids), checked over the tar.
        var diffID: String?
        /// The size the descriptor gives.
        var size: UInt64?
    }

    var format: String
    var manifestDigest: String?
    var configDigest: String
    var architecture: String
    var layers: [Layer]

    /// Reads the archive's documents, checking each digest and size, and picks the linux/amd64 image.
    static func make(_ archive: ImageArchive) throws(ImageError) -> ImportPlan {
        if archive.has("oci-layout") && archive.has("index.json") { return try oci(archive) }
        if case .tarball = archive, archive.has("manifest.json") { return try docker(archive) }
        throw .badInput("\(archive.path) is neither an OCI image layout (oci-layout, index.json) nor a docker save archive (manifest.json)")
    }

    static func oci(_ archive: ImageArchive) throws(ImageError) -> ImportPlan {
        let layout = try archive.json(ImageDocuments.Layout.self, "oci-layout")
        guard layout.imageLayoutVersion == "1.0.0" else {
            throw .badInput("\(archive.path): oci-layout version \(layout.imageLayoutVersion.prefix(20)) is not 1.0.0")
        }
        var index = try archive.json(ImageDocuments.Index.self, "index.json")
        var chosen: ImageDocuments.Descriptor?
        // An index may point at another index (a multi-platform image); two levels at most.
        for _ in 0..<2 {
            let candidates = index.manifests.filter { descriptor in
                descriptor.platform.map { $0.os == "linux" && $0.architecture == "amd64" } ?? (index.manifests.count == 1)
            }
            guard let first = candidates.first else {
                let platforms = index.manifests.compactMap { $0.platform.map { "\($0.os)/\($0.architecture)" } }
                throw .badInput("\(archive.path) has no linux/amd64 image (it has \(platforms.isEmpty ? "none named" : platforms.joined(separator: ", ")))")
            }
            if ImageDocuments.indexTypes.contains(first.mediaType) {
                index = try ImageArchive.decode(ImageDocuments.Index.self, try blob(archive, first, what: "index"), what: "\(archive.path): index \(first.digest)")
                continue
            }
            chosen = first
            break
        }
        guard let chosen, ImageDocuments.manifestTypes.contains(chosen.mediaType) else {
            throw .badInput("\(archive.path): the linux/amd64 entry of the index is not an image manifest")
        }
        let manifestBytes = try blob(archive, chosen, what: "manifest")
        let manifest = try ImageArchive.decode(ImageDocuments.Manifest.self, manifestBytes, what: "\(archive.path): manifest \(chosen.digest)")
        let configBytes = try blob(archive, manifest.config, what: "config")
        let config = try checkConfig(configBytes, archive: archive)
        let diffIDs = config.rootfs?.diff_ids ?? []
        var layers: [Layer] = []
        for (number, descriptor) in manifest.layers.enumerated() {
            let digest = try ImageDocuments.checkDigest(descriptor.digest, what: "layer \(number + 1)")
            guard descriptor.size >= 0 else { throw .badInput("\(archive.path): layer \(digest) has a negative size") }
            layers.append(Layer(name: "blobs/sha256/" + digest.dropFirst(7), gzip: try ImageDocuments.gzipped(descriptor.mediaType),
                                blobDigest: digest, diffID: diffIDs.count == manifest.layers.count ? diffIDs[number] : nil,
                                size: UInt64(descriptor.size)))
        }
        let format = if case .directory = archive { "oci-layout" } else { "oci-archive" }
        return ImportPlan(format: format, manifestDigest: chosen.digest, configDigest: manifest.config.digest,
                          architecture: config.architecture, layers: layers)
    }

    static func docker(_ archive: ImageArchive) throws(ImageError) -> ImportPlan {
        let entries = try archive.json([ImageDocuments.DockerEntry].self, "manifest.json")
        guard entries.count == 1 else {
            throw .badInput("\(archive.path): manifest.json lists \(entries.count) images; import an archive of one (docker save IMAGE)")
        }
        let entry = entries[0]
        let configName = try normalized(entry.Config, archive)
        let configBytes = try archive.bytes(configName)
        let configDigest = "sha256:" + hexBytes(SHA256.hash(data: configBytes))
        // Docker names the config by its digest ("HEX.json", or "blobs/sha256/HEX"): it must match.
        let stem = configName.split(separator: "/").last.map { $0.hasSuffix(".json") ? String($0.dropLast(5)) : String($0) } ?? ""
        if ImageDigest(stem) != nil, "sha256:" + stem.lowercased() != configDigest {
            throw .badInput("\(archive.path): config \(configName) does not match its digest (its SHA-256 is \(configDigest))")
        }
        let config = try checkConfig(configBytes, archive: archive)
        guard let diffIDs = config.rootfs?.diff_ids, diffIDs.count == entry.Layers.count else {
            throw .badInput("\(archive.path): the config's rootfs.diff_ids do not list the \(entry.Layers.count) layers")
        }
        var layers: [Layer] = []
        for (number, name) in entry.Layers.enumerated() {
            let diffID = try ImageDocuments.checkDigest(diffIDs[number], what: "layer \(number + 1) diff_id")
            let member = try normalized(name, archive)
            // docker save writes plain tars; a gzip one is told by its first bytes.
            var window = try archive.window(member)
            let magic = try window.read(count: 2)
            layers.append(Layer(name: member, gzip: magic == [0x1f, 0x8b], blobDigest: nil, diffID: diffID, size: nil))
        }
        return ImportPlan(format: "docker-archive", manifestDigest: nil, configDigest: configDigest, architecture: config.architecture,
                          layers: layers)
    }

    /// A descriptor's blob, whole: its size and SHA-256 checked against the descriptor.
    static func blob(_ archive: ImageArchive, _ descriptor: ImageDocuments.Descriptor, what: String) throws(ImageError) -> [UInt8] {
        let digest = try ImageDocuments.checkDigest(descriptor.digest, what: what)
        let bytes = try archive.bytes("blobs/sha256/" + digest.dropFirst(7))
        guard Int64(bytes.count) == descriptor.size, "sha256:" + hexBytes(SHA256.hash(data: bytes)) == digest else {
            throw .badInput("\(archive.path): \(what) blob \(digest) does not match its descriptor (size or SHA-256)")
        }
        return bytes
    }

    static func checkConfig(_ bytes: [UInt8], archive: ImageArchive) throws(ImageError) -> ImageDocuments.Config {
        let config = try ImageArchive.decode(ImageDocuments.Config.self, bytes, what: "\(archive.path): the image config")
        guard config.os == "linux", config.architecture == "amd64" else {
            throw .badInput("\(archive.path) is an image for \(config.os.prefix(20))/\(config.architecture.prefix(20)): momin runs linux/amd64 images")
        }
        return config
    }

    static func normalized(_ name: String, _ archive: ImageArchive) throws(ImageError) -> String {
        do { return try LayerPath.normalize(name).components.joined(separator: "/") } catch {
            throw .badInput("\(archive.path): manifest.json names '\(TarError.printable(name))': \(error.why)")
        }
    }
}
