import ArgumentParser
import Glibc
import Host
import Images

/// `momin image`: root file system images in a content-addressed store (docs/images.md).
struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Build, import, list, inspect and remove root file system images.",
        subcommands: [ImageBuild.self, ImageImport.self, ImageList.self, ImageInspect.self, ImageRemove.self])
}

/// `momin image build debian [--name NAME] [--packages LIST] [--no-default-packages] [--suite SUITE] [--size SIZE] [--rebuild]`.
struct ImageBuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build a Debian root file system image (ext4) into the image store.",
        discussion: """
            mmdebstrap installs Debian's minbase and the packages into a directory (as root, \
            with chroot; nothing is mounted), and mkfs.ext4 -d makes the image from it. The \
            default packages: \(DebianImageRequest.triagePackages.joined(separator: ", ")). Equal \
            inputs and package versions give a byte-identical image. It is kept as \
            $MOMIN_CACHE/images/sha256/<digest>.ext4 (default ~/.cache/momin/images) with a JSON \
            manifest; a build with the same inputs reuses it unless --rebuild. \
            MOMIN_DEBIAN_MIRROR and MOMIN_DEBIAN_SECURITY_MIRROR name other archives. Prints one \
            line, ending with the image's path. Exit status: 0, 2 on bad input (an unknown \
            package or suite), 1 when a step failed (nothing is kept).
            """)

    @Argument(help: ArgumentHelp("What to build from: debian.", valueName: "source"))
    var source: String

    @Option(help: ArgumentHelp("The image's name in the store.", valueName: "name"))
    var name = "debian"

    @Option(help: ArgumentHelp("More packages, comma-separated (python3-yaml,tshark).", valueName: "list"))
    var packages: String?

    @Flag(help: "Leave the default packages out: minbase and --packages only.")
    var noDefaultPackages = false

    @Option(help: ArgumentHelp("The Debian suite.", valueName: "suite"))
    var suite = "bookworm"

    @Option(help: ArgumentHelp("The image file's size (512M, 2G); default: the tree's, with headroom.", valueName: "size"))
    var size: String?

    @Flag(help: "Build even when an image from the same inputs is in the store.")
    var rebuild = false

    func run() throws {
        guard source == "debian" else { throw CLIError.usage("cannot build an image from '\(source)': the only source is debian") }
        let environment = processEnvironment()
        var request = DebianImageRequest(name: name, suite: suite, defaultPackages: !noDefaultPackages)
        if let packages { request.extraPackages = try DebianImageRequest.parsePackageList(packages) }
        if let size { request.size = try ImageSize.parse(size) }
        if let mirror = environment["MOMIN_DEBIAN_MIRROR"], !mirror.isEmpty { request.mirror = mirror }
        if let mirror = environment["MOMIN_DEBIAN_SECURITY_MIRROR"], !mirror.isEmpty { request.securityMirror = mirror }
        try request.validate()

        // Ctrl-C, SIGTERM and SIGHUP are taken here and passed to the running step, so that
        // mmdebstrap undoes its mounts and the build directory is removed before we exit.
        let (progress, pendingSignal) = buildReporting()
        let builder = ImageMaker(store: imageStore(environment), environment: environment, progress: progress,
                                 pendingSignal: pendingSignal, warn: { writeStandardError("momin: warning: " + $0 + "\n") })
        switch try builder.build(request, rebuild: rebuild) {
        case .made(let manifest, let path):
            print("built image \(request.name) \(manifest.digest) (\(ImageSize.describe(manifest.sizeBytes)), "
                + "\(manifest.packages.count) packages, \(Int(manifest.buildSeconds.rounded())) s): \(path)")
        case .reused(let manifest, let path):
            print("reusing image \(request.name) \(manifest.digest) (built \(manifest.builtAt)): \(path)")
        }
    }
}

/// `momin image import FILE [--name NAME] [--max-size SIZE] [--max-entries N] [--rebuild]`.
struct ImageImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a local OCI image layout or docker save archive as a root file system image (ext4).",
        discussion: """
            FILE is a `docker save` tar, a tar of an OCI image layout, or a layout directory. \
            The linux/amd64 image's layers are applied in order (whiteouts and opaque \
            directories honoured) and made into an ext4 image as `image build` does. The input \
            is treated as hostile: `..` paths, writes through symlinks, bad digests and sizes \
            over the limits are refused (exit 2, naming the entry); device nodes and FIFOs are \
            dropped and setuid/setgid bits cleared (counted in the manifest). Needs root. A \
            second import of the same file reuses the image unless --rebuild (docs/images.md).
            """)

    @Argument(help: ArgumentHelp("A docker save archive, an OCI layout tar, or an OCI layout directory.", valueName: "file"))
    var file: String

    @Option(help: ArgumentHelp("The image's name in the store; default: from the file's name.", valueName: "name"))
    var name: String?

    @Option(help: ArgumentHelp("The most uncompressed layer bytes to read, all layers together (default 8G).", valueName: "size"))
    var maxSize: String?

    @Option(help: ArgumentHelp("The most tar entries to read, all layers together (default 1000000).", valueName: "n"))
    var maxEntries: Int?

    @Flag(help: "Import even when an image from the same file is in the store.")
    var rebuild = false

    func run() throws {
        let environment = processEnvironment()
        var request = ImageImportRequest(path: file, name: name)
        if let maxSize {
            request.maxBytes = try ImageSize.parse(maxSize, option: "--max-size")
        }
        if let maxEntries {
            guard maxEntries > 0 else { throw CLIError.usage("--max-entries \(maxEntries) is not a positive number") }
            request.maxEntries = maxEntries
        }
        let (progress, pendingSignal) = buildReporting()
        let importer = ImageMaker(store: imageStore(environment), environment: environment, progress: progress,
                                   pendingSignal: pendingSignal, warn: { writeStandardError("momin: warning: " + $0 + "\n") })
        switch try importer.importImage(request, rebuild: rebuild) {
        case .made(let manifest, let path):
            let layers = manifest.imported?.layers.count ?? 0
            print("imported image \(request.name) \(manifest.digest) (\(ImageSize.describe(manifest.sizeBytes)), \(layers) layers, "
                + "\(Int(manifest.buildSeconds.rounded())) s): \(path)")
        case .reused(let manifest, let path):
            print("reusing image \(request.name) \(manifest.digest) (built \(manifest.builtAt)): \(path)")
        }
    }
}

/// Progress lines on stderr when it is a terminal, and the stop signals (Ctrl-C, SIGTERM,
/// SIGHUP) blocked and asked for between steps, passed on to the running one.
private func buildReporting() -> (progress: (@Sendable (String) -> Void)?, pendingSignal: @Sendable () -> Int32?) {
    let stopSignals = SignalRelay.blockStopSignals()
    let pendingSignal: @Sendable () -> Int32? = {
        var set = stopSignals
        var now = timespec(tv_sec: 0, tv_nsec: 0)
        let signal = sigtimedwait(&set, nil, &now)
        return signal > 0 ? signal : nil
    }
    var progress: (@Sendable (String) -> Void)?
    if isatty(2) == 1 { progress = { line in writeStandardError("momin: image: " + line + "\n") } }
    return (progress, pendingSignal)
}

/// `momin image ls`.
struct ImageList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List the images in the store: name, digest, size, packages, when built.",
        discussion: """
            One line per name, then one per image no name points at (<none>). A manifest that \
            cannot be read is named on stderr and the exit status is 1.
            """)

    func run() throws {
        let store = imageStore(processEnvironment())
        let (images, damaged) = store.list()
        let names = try store.names()
        var byDigest: [String: ImageManifest] = [:]
        for manifest in images { byDigest[manifest.digest] = manifest }
        var problems = damaged.map(\.message)
        var rows: [[String]] = []
        func row(_ name: String, _ manifest: ImageManifest) -> [String] {
            [name, manifest.imageDigest.short, ImageSize.describe(manifest.sizeBytes), String(manifest.packages.count), manifest.builtAt]
        }
        for (name, digest) in names.sorted(by: { $0.key < $1.key }) {
            if let manifest = byDigest[digest.description] { rows.append(row(name, manifest)) }
            else if !damaged.contains(where: { $0.message.contains(digest.hex) }) {
                problems.append("image name \(name) points at \(digest), which is not in \(store.root)")
            }
        }
        let named = Set(names.values.map(\.description))
        for manifest in images.sorted(by: { $0.builtAt > $1.builtAt }) where !named.contains(manifest.digest) {
            rows.append(row("<none>", manifest))
        }
        print(table([["NAME", "DIGEST", "SIZE", "PACKAGES", "BUILT"]] + rows), terminator: "")
        for problem in problems { writeStandardError("momin: \(problem)\n") }
        if !problems.isEmpty { Glibc.exit(ExitStatus.failure.rawValue) }
    }
}

/// `momin image inspect NAME|DIGEST`.
struct ImageInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print an image's manifest (JSON): its packages with versions, tools, size, digest.",
        discussion: "Exits 2 when no image has that name or digest, 1 when its manifest is damaged.")

    @Argument(help: ArgumentHelp("A name, or a digest (sha256:HEX, or a unique prefix of 4 or more hex digits).", valueName: "image"))
    var image: String

    func run() throws {
        let store = imageStore(processEnvironment())
        emit(try store.manifest(try store.resolve(image)).encoded())
    }
}

/// `momin image rm [--force] NAME|DIGEST`.
struct ImageRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove a name, and the image (file and manifest) once no name points at it.",
        discussion: """
            By name: the name goes; the image goes too unless another name still points at it. \
            By digest: the image goes, refused (exit 2) while names point at it unless --force, \
            which removes them as well.
            """)

    @Argument(help: ArgumentHelp("A name, or a digest (sha256:HEX, or a unique prefix of 4 or more hex digits).", valueName: "image"))
    var image: String

    @Flag(help: "Remove an image given by digest even though names point at it, and those names.")
    var force = false

    func run() throws {
        switch try imageStore(processEnvironment()).remove(image, force: force) {
        case .removed(let digest, let names):
            print("removed image \(digest)" + (names.isEmpty ? "" : " (named \(names.joined(separator: ", ")))"))
        case .unnamed(let name, let digest, let others):
            print("removed the name \(name); image \(digest) stays, named \(others.joined(separator: ", "))")
        }
    }
}

// MARK: Helpers

func imageStore(_ environment: [String: String]) -> ImageStore {
    ImageStore(root: ImageStore.defaultRoot(environment: environment))
}

/// This process's environment as a dictionary (the first of duplicate names wins).
func processEnvironment() -> [String: String] {
    var values: [String: String] = [:]
    var entry = environ
    while let pointer = entry.pointee {
        let text = String(cString: pointer)
        if let equals = text.firstIndex(of: "="), values[String(text[..<equals])] == nil {
            values[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        entry += 1
    }
    return values
}

/// Columns padded to their widest cell, two spaces apart.
private func table(_ rows: [[String]]) -> String {
    guard let columns = rows.first?.count else { return "" }
    let widths = (0..<columns).map { column in rows.map { $0[column].count }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { index, cell in
            index == columns - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count + 2)
        }.joined()
    }.joined(separator: "\n") + "\n"
}
