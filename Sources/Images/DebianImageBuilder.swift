import Glibc
import POSIX

/// `momin image build debian`: mmdebstrap makes a root tree, the tree is tidied and its times
/// clamped, mke2fs -d turns it into an ext4 file (no mount, no loop device), debugfs fixes the
/// change times, e2fsck checks it, and the store takes it by its SHA-256. Everything happens
/// in a directory of the store's tmp/, removed at the end, whatever the outcome.
public struct DebianImageBuilder: Sendable {
    public var store: ImageStore
    /// The caller's environment: PATH (where the programs are found) and proxy settings.
    public var environment: [String: String]
    /// One line per step, and each line mmdebstrap writes; nil: quiet.
    public var progress: (@Sendable (String) -> Void)?
    /// Asked now and then while a program runs: a signal to pass on to it (the caller's Ctrl-C).
    public var pendingSignal: (@Sendable () -> Int32?)?
    /// What went wrong on the side while the build went on (a build directory left behind).
    public var warn: @Sendable (String) -> Void

    public init(store: ImageStore, environment: [String: String], progress: (@Sendable (String) -> Void)? = nil,
                pendingSignal: (@Sendable () -> Int32?)? = nil, warn: @escaping @Sendable (String) -> Void = { _ in }) {
        self.store = store
        self.environment = environment
        self.progress = progress
        self.pendingSignal = pendingSignal
        self.warn = warn
    }

    /// What `build` did: made a new image, or found one from the same inputs.
    public enum Outcome: Sendable {
        case built(ImageManifest, path: String)
        case reused(ImageManifest, path: String)
    }

    /// The programs a build runs and the Debian package each comes from.
    static let programs: [(name: String, package: String)] = [
        ("mmdebstrap", "mmdebstrap"), ("dpkg-query", "dpkg"), ("mke2fs", "e2fsprogs"), ("debugfs", "e2fsprogs"),
        ("dumpe2fs", "e2fsprogs"), ("e2fsck", "e2fsprogs"),
    ]

    /// Builds the image `request` asks for, or reuses the one built from the same inputs
    /// (unless `rebuild`), and names it `request.name`.
    public func build(_ request: DebianImageRequest, rebuild: Bool = false) throws(ImageError) -> Outcome {
        try request.validate()
        var paths: [String: String] = [:]
        for (name, package) in Self.programs {
            guard let path = Program.locate(name, searchPath: environment["PATH"]) else {
                throw .failed("\(name) is not installed: install Debian's \(package) package (apt-get install \(package))")
            }
            paths[name] = path
        }
        let tools = try toolVersions(paths)
        let key = request.inputsKey(tools: tools)
        if !rebuild, let found = store.reusable(inputsKey: key) {
            try store.setName(request.name, to: found.imageDigest)
            return .reused(found, path: store.imagePath(found.imageDigest))
        }
        guard geteuid() == 0 else {
            throw .failed("building an image needs root: mmdebstrap --mode=root installs the packages in a chroot")
        }
        for left in store.removeAbandonedBuilds() { warn("an abandoned image build is left in place: \(left) is mounted") }
        let started = MonotonicClock.seconds()
        let directory = try store.makeBuildDirectory()
        defer {
            let left = store.removeBuildDirectory(directory)
            if !left.isEmpty { warn("could not remove the build directory \(directory): \(left[0]) is mounted") }
        }
        let plan = DebianBuildPlan(request: request, inputsKey: key)
        let tree = directory + "/root"
        let image = directory + "/image.ext4"

        progress?("resolving \(request.packages.count) packages and \(DebianImageRequest.variant) in Debian \(request.suite) (mmdebstrap --simulate)")
        let resolved = try run(plan.mmdebstrapArguments(program: paths["mmdebstrap"]!, target: directory + "/check", simulate: true))
        guard resolved.succeeded else {
            throw BuildOutput.mmdebstrapFailure(lines: resolved.lastLines, request: request, status: resolved.statusText)
        }
        progress?("installing them with mmdebstrap")
        let debootstrap = try run(plan.mmdebstrapArguments(program: paths["mmdebstrap"]!, target: tree), streaming: true)
        guard debootstrap.succeeded else {
            throw BuildOutput.mmdebstrapFailure(lines: debootstrap.lastLines, request: request, status: debootstrap.statusText)
        }

        progress?("tidying the tree and clamping its times to \(DebianImageRequest.sourceDateEpoch)")
        let packages = try installedPackages(tree, dpkgQuery: paths["dpkg-query"]!)
        let missing = request.packages.filter { name in !packages.contains { $0.name == name } }
        guard missing.isEmpty else { throw .failed("mmdebstrap finished but did not install \(missing.joined(separator: ", "))") }
        try ImageTree.tidy(tree)
        let tally = try ImageTree.clampAndTally(tree, epoch: DebianImageRequest.sourceDateEpoch)
        let size = request.size ?? ImageSize.automatic(for: tally)
        guard size >= ImageSize.minimum(for: tally) else {
            throw .badInput("--size \(ImageSize.describe(size)) is too small for the tree (\(ImageSize.describe(tally.bytes)) in "
                + "\(tally.inodes) files): give at least \(ImageSize.describe(ImageSize.minimum(for: tally)))")
        }

        progress?("making a \(ImageSize.describe(size)) ext4 image of \(ImageSize.describe(tally.bytes)) with mke2fs -d")
        try makeImage(plan: plan, tree: tree, image: image, size: size, tally: tally, paths: paths, directory: directory)

        progress?("computing the image's SHA-256")
        let digest = try ImageDigest.ofFile(image)
        let manifest = ImageManifest(
            digest: digest, name: request.name, suite: request.suite, variant: DebianImageRequest.variant,
            architecture: request.architecture, sources: request.sources, requested: request.packages, packages: packages, tools: tools,
            sourceDateEpoch: DebianImageRequest.sourceDateEpoch, filesystemUUID: plan.filesystemUUID, sizeBytes: size,
            treeBytes: tally.bytes, inodes: tally.inodes, builtAt: Self.now(),
            buildSeconds: ((MonotonicClock.seconds() - started) * 10).rounded() / 10, inputsKey: key)
        try store.add(image: image, manifest: manifest, name: request.name)
        return .built(manifest, path: store.imagePath(digest))
    }

    private func makeImage(plan: DebianBuildPlan, tree: String, image: String, size: UInt64, tally: TreeTally,
                           paths: [String: String], directory: String) throws(ImageError) {
        let configuration = directory + "/mke2fs.conf"
        try ImageStore.writeAtomically(configuration, Array(DebianBuildPlan.mke2fsConfiguration.utf8))
        let fd = retryingEINTR { open(image, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
        guard fd >= 0 else { throw .failed("cannot create \(image): \(describeErrno())") }
        let sized = ftruncate(fd, off_t(size)) == 0
        let reason = describeErrno()
        close(fd)
        guard sized else { throw .failed("cannot make \(image) \(size) bytes: \(reason)") }

        let extra = ["MKE2FS_CONFIG": configuration]
        let inodes = ImageSize.inodes(for: tally)
        let mkfs = try run(plan.mke2fsArguments(program: paths["mke2fs"]!, tree: tree, image: image, inodes: inodes), extra: extra)
        guard mkfs.succeeded else {
            let last = mkfs.lastLines.last(where: { !$0.isEmpty }) ?? "no output"
            if plan.request.size != nil, mkfs.lastLines.contains(where: { $0.contains("Could not allocate") || $0.contains("No space") }) {
                throw .badInput("--size \(ImageSize.describe(size)) is too small for the tree: mke2fs: \(last)")
            }
            throw .failed("mke2fs \(mkfs.statusText): \(last)")
        }

        let report = try run([paths["dumpe2fs"]!, image], extra: extra, outputLimit: 64 << 20)
        guard report.succeeded, !report.outputTruncated else { throw .failed("dumpe2fs \(report.statusText) on \(image)") }
        let inUse = try BuildOutput.inodesInUse(dumpe2fs: String(decoding: report.output, as: UTF8.self))
        let script = directory + "/ctime.debugfs"
        try ImageStore.writeAtomically(script, Array(DebianBuildPlan.ctimeScript(inodes: inUse).utf8))
        let fix = try run([paths["debugfs"]!, "-w", "-f", script, image], extra: extra)
        // debugfs exits 0 even when a command fails; it says so on stderr, where only its banner belongs.
        let complaint = fix.errorLines.first { !$0.isEmpty && !$0.hasPrefix("debugfs ") }
        guard fix.succeeded, complaint == nil else { throw .failed("debugfs \(fix.statusText) fixing change times: \(complaint ?? "")") }

        let check = try run([paths["e2fsck"]!, "-fn", image], extra: extra)
        guard check.succeeded else {
            throw .failed("e2fsck -fn found problems in the new image (\(check.statusText)): \(check.lastLines.suffix(3).joined(separator: "; "))")
        }
    }

    private func toolVersions(_ paths: [String: String]) throws(ImageError) -> ToolVersions {
        let mmdebstrap = try run([paths["mmdebstrap"]!, "--version"])
        let mke2fs = try run([paths["mke2fs"]!, "-V"])
        guard let debootstrapVersion = BuildOutput.mmdebstrapVersion(String(decoding: mmdebstrap.output, as: UTF8.self)) else {
            throw .failed("mmdebstrap --version printed no version: \(mmdebstrap.lastLines.first ?? "")")
        }
        guard let e2fsprogsVersion = BuildOutput.e2fsprogsVersion(mke2fs.lastLines.joined(separator: "\n")) else {
            throw .failed("mke2fs -V printed no version: \(mke2fs.lastLines.first ?? "")")
        }
        return ToolVersions(mmdebstrap: debootstrapVersion, e2fsprogs: e2fsprogsVersion)
    }

    private func installedPackages(_ tree: String, dpkgQuery: String) throws(ImageError) -> [ImagePackage] {
        let query = try run([dpkgQuery, "--admindir=" + tree + "/var/lib/dpkg", "-W",
                             "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"], outputLimit: 16 << 20)
        guard query.succeeded, !query.outputTruncated else {
            throw .failed("dpkg-query \(query.statusText) in \(tree): \(query.lastLines.last ?? "")")
        }
        return try BuildOutput.installedPackages(String(decoding: query.output, as: UTF8.self))
    }

    private func run(_ argv: [String], extra: [String: String] = [:], outputLimit: Int = 1 << 20,
                     streaming: Bool = false) throws(ImageError) -> ProgramResult {
        let progress = self.progress
        let result = try Program.run(argv, environment: DebianBuildPlan.environment(parent: environment, extra: extra),
                                     outputLimit: outputLimit, onLine: streaming ? progress.map { p in { p("  " + $0) } } : nil,
                                     pendingSignal: pendingSignal)
        if let signal = result.forwardedSignal {
            throw .failed("interrupted by signal \(signal) while \(argv[0].split(separator: "/").last ?? "") ran; nothing was kept")
        }
        return result
    }

    /// The current time, RFC 3339 in UTC, to the second.
    static func now() -> String {
        var seconds = time(nil)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(width - digits.count, 0)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))Z"
    }
}
