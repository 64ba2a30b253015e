import Glibc
import POSIX

/// The file system's identity and mke2fs's command line, fixed by an inputs key: equal inputs
/// give equal bytes, different images different UUIDs.
public struct Ext4Recipe: Equatable, Sendable {
    public var inputsKey: String

    public init(inputsKey: String) { self.inputsKey = inputsKey }

    /// The UUID and the directory hash seed: the key's first and second 32 hex digits.
    public var filesystemUUID: String { DebianBuildPlan.uuid(fromHex: String(inputsKey.prefix(32))) }
    public var hashSeed: String { DebianBuildPlan.uuid(fromHex: String(inputsKey.dropFirst(32).prefix(32))) }

    /// `mke2fs` filling `image` (made beforehand at its full size) from `tree`: no mount, no
    /// loop device. UUID, hash seed, label and inode count are fixed; times come from the
    /// tree (clamped) and E2FSPROGS_FAKE_TIME.
    public func mke2fsArguments(program: String, tree: String, image: String, inodes: Int) -> [String] {
        [program, "-F", "-q", "-t", "ext4", "-b", "4096", "-I", "256", "-N", String(inodes), "-m", "0", "-L", "momin",
         "-U", filesystemUUID,
         "-E", "hash_seed=\(hashSeed),lazy_itable_init=0,lazy_journal_init=0,nodiscard,root_owner=0:0",
         "-d", tree, image]
    }
}

/// What every image build does once its root tree is ready, whatever made the tree: tidy it,
/// clamp its times and size it, then mke2fs -d, the change-time fix with debugfs, and e2fsck
/// (docs/images.md, "How a build goes", steps 5 to 9). Debian builds and imports share it.
struct ImageFinisher {
    /// e2fsprogs' programs, each with its Debian package.
    static let programs: [(name: String, package: String)] = [
        ("mke2fs", "e2fsprogs"), ("debugfs", "e2fsprogs"), ("dumpe2fs", "e2fsprogs"), ("e2fsck", "e2fsprogs"),
    ]

    var paths: [String: String]
    var environment: [String: String]
    var progress: (@Sendable (String) -> Void)?
    var pendingSignal: (@Sendable () -> Int32?)?

    /// Finds `programs` (these and the caller's own) or names the package of the first missing one.
    static func locate(_ programs: [(name: String, package: String)], environment: [String: String]) throws(ImageError) -> [String: String] {
        var paths: [String: String] = [:]
        for (name, package) in programs {
            guard let path = Program.locate(name, searchPath: environment["PATH"]) else {
                throw .failed("\(name) is not installed: install Debian's \(package) package (apt-get install \(package))")
            }
            paths[name] = path
        }
        return paths
    }

    /// "1.47.0", from `mke2fs -V`.
    func e2fsprogsVersion() throws(ImageError) -> String {
        let mke2fs = try run([paths["mke2fs"]!, "-V"])
        guard let version = BuildOutput.e2fsprogsVersion(mke2fs.lastLines.joined(separator: "\n")) else {
            throw .failed("mke2fs -V printed no version: \(mke2fs.lastLines.first ?? "")")
        }
        return version
    }

    /// Tidies `tree`, clamps its times, and returns its tally and the image size: `requested`,
    /// checked against what the tree needs, or one computed with headroom.
    func prepare(tree: String, requested: UInt64?) throws(ImageError) -> (tally: TreeTally, size: UInt64) {
        progress?("tidying the tree and clamping its times to \(DebianImageRequest.sourceDateEpoch)")
        try ImageTree.tidy(tree)
        let tally = try ImageTree.clampAndTally(tree, epoch: DebianImageRequest.sourceDateEpoch)
        let size = requested ?? ImageSize.automatic(for: tally)
        guard size >= ImageSize.minimum(for: tally) else {
            throw .badInput("--size \(ImageSize.describe(size)) is too small for the tree (\(ImageSize.describe(tally.bytes)) in "
                + "\(tally.inodes) files): give at least \(ImageSize.describe(ImageSize.minimum(for: tally)))")
        }
        return (tally, size)
    }

    /// mke2fs -d, the change-time fix and e2fsck: `image` is a checked ext4 file of `size` bytes
    /// holding `tree`. `sizeRequested`: a full file system is the caller's --size's fault.
    func makeImage(recipe: Ext4Recipe, tree: String, image: String, size: UInt64, tally: TreeTally, sizeRequested: Bool,
                   directory: String) throws(ImageError) {
        progress?("making a \(ImageSize.describe(size)) ext4 image of \(ImageSize.describe(tally.bytes)) with mke2fs -d")
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
        let mkfs = try run(recipe.mke2fsArguments(program: paths["mke2fs"]!, tree: tree, image: image, inodes: inodes), extra: extra)
        guard mkfs.succeeded else {
            let last = mkfs.lastLines.last(where: { !$0.isEmpty }) ?? "no output"
            if sizeRequested, mkfs.lastLines.contains(where: { $0.contains("Could not allocate") || $0.contains("No space") }) {
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

    /// One program with the build's fixed environment; a signal passed on to it ends the build.
    func run(_ argv: [String], extra: [String: String] = [:], outputLimit: Int = 1 << 20,
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
}
