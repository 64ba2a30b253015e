import Glibc
import POSIX

/// `momin image build debian`: mmdebstrap makes a root tree, the tree is tidied and its times
/// clamped, mke2fs -d turns it into an ext4 file (no mount, no loop device), debugfs fixes the
/// change times, e2fsck checks it, and the store takes it by its SHA-256. Everything happens
/// in a directory of the store's tmp/, removed at the end, whatever the outcome.
extension ImageMaker {
    /// The programs a build runs and the Debian package each comes from.
    static let debianPrograms: [(name: String, package: String)] = [("mmdebstrap", "mmdebstrap"), ("dpkg-query", "dpkg")] + ImageFinisher.programs

    /// Builds the image `request` asks for, or reuses the one built from the same inputs
    /// (unless `rebuild`), and names it `request.name`.
    public func build(_ request: DebianImageRequest, rebuild: Bool = false) throws(ImageError) -> Outcome {
        try request.validate()
        let paths = try ImageFinisher.locate(Self.debianPrograms, environment: environment)
        let finisher = ImageFinisher(paths: paths, environment: environment, progress: progress, pendingSignal: pendingSignal)
        let tools = try toolVersions(paths, finisher)
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
        let resolved = try finisher.run(plan.mmdebstrapArguments(program: paths["mmdebstrap"]!, target: directory + "/check", simulate: true))
        guard resolved.succeeded else {
            throw BuildOutput.mmdebstrapFailure(lines: resolved.lastLines, request: request, status: resolved.statusText)
        }
        progress?("installing them with mmdebstrap")
        let debootstrap = try finisher.run(plan.mmdebstrapArguments(program: paths["mmdebstrap"]!, target: tree), streaming: true)
        guard debootstrap.succeeded else {
            throw BuildOutput.mmdebstrapFailure(lines: debootstrap.lastLines, request: request, status: debootstrap.statusText)
        }

        let packages = try installedPackages(tree, dpkgQuery: paths["dpkg-query"]!, finisher)
        let missing = request.packages.filter { name in !packages.contains { $0.name == name } }
        guard missing.isEmpty else { throw .failed("mmdebstrap finished but did not install \(missing.joined(separator: ", "))") }
        let (tally, size) = try finisher.prepare(tree: tree, requested: request.size)
        try finisher.makeImage(recipe: plan.ext4, tree: tree, image: image, size: size, tally: tally, sizeRequested: request.size != nil,
                               directory: directory)

        progress?("computing the image's SHA-256")
        let digest = try ImageDigest.ofFile(image)
        let manifest = ImageManifest(
            digest: digest, name: request.name, suite: request.suite, variant: DebianImageRequest.variant,
            architecture: request.architecture, sources: request.sources, requested: request.packages, packages: packages, tools: tools,
            sourceDateEpoch: DebianImageRequest.sourceDateEpoch, filesystemUUID: plan.filesystemUUID, sizeBytes: size,
            treeBytes: tally.bytes, inodes: tally.inodes, builtAt: Self.now(),
            buildSeconds: ((MonotonicClock.seconds() - started) * 10).rounded() / 10, inputsKey: key)
        try store.add(image: image, manifest: manifest, name: request.name)
        return .made(manifest, path: store.imagePath(digest))
    }

    private func toolVersions(_ paths: [String: String], _ finisher: ImageFinisher) throws(ImageError) -> ToolVersions {
        let mmdebstrap = try finisher.run([paths["mmdebstrap"]!, "--version"])
        guard let debootstrapVersion = BuildOutput.mmdebstrapVersion(String(decoding: mmdebstrap.output, as: UTF8.self)) else {
            throw .failed("mmdebstrap --version printed no version: \(mmdebstrap.lastLines.first ?? "")")
        }
        return ToolVersions(mmdebstrap: debootstrapVersion, e2fsprogs: try finisher.e2fsprogsVersion())
    }

    private func installedPackages(_ tree: String, dpkgQuery: String, _ finisher: ImageFinisher) throws(ImageError) -> [ImagePackage] {
        let query = try finisher.run([dpkgQuery, "--admindir=" + tree + "/var/lib/dpkg", "-W",
                             "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"], outputLimit: 16 << 20)
        guard query.succeeded, !query.outputTruncated else {
            throw .failed("dpkg-query \(query.statusText) in \(tree): \(query.lastLines.last ?? "")")
        }
        return try BuildOutput.installedPackages(String(decoding: query.output, as: UTF8.self))
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
