/// The programs a Debian image build runs, as argv arrays and environments, and how their
/// output is read: pure, so that what would run is tested without running it.
public struct DebianBuildPlan: Equatable, Sendable {
    public var request: DebianImageRequest
    /// The inputs key (`DebianImageRequest.inputsKey`): the file system's UUID and hash seed come from it.
    public var inputsKey: String

    public init(request: DebianImageRequest, inputsKey: String) {
        self.request = request
        self.inputsKey = inputsKey
    }

    /// dpkg leaves these paths out of every package (kept in the image's dpkg.cfg.d for later
    /// installs too): manuals and documentation nobody reads in an agent's VM, but each
    /// package's copyright file stays.
    public static let dpkgPathFilters = [
        "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/info/*", "path-exclude=/usr/share/doc/*",
        "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/locale/*", "path-exclude=/usr/share/lintian/*",
    ]

    /// `mmdebstrap` into `target` (which must not exist): as root with chroot(2) (mode root;
    /// no loop device, no image mounted), the minbase variant plus the packages, a directory.
    /// With `simulate`, apt only resolves the selection (seconds, where a full run finds an
    /// unknown package only after installing the essential ones).
    public func mmdebstrapArguments(program: String, target: String, simulate: Bool = false) -> [String] {
        var argv = [program] + (simulate ? ["--simulate"] : [])
        argv += ["--mode=root", "--variant=\(DebianImageRequest.variant)", "--format=directory", "--architectures=\(request.architecture)"]
        if !request.packages.isEmpty { argv.append("--include=" + request.packages.joined(separator: ",")) }
        argv += Self.dpkgPathFilters.map { "--dpkgopt=" + $0 }
        argv.append("--aptopt=Acquire::Retries \"3\"")
        argv += [request.suite, target]
        argv += request.sources
        return argv
    }

    /// The file system's UUID and its directory hash seed: fixed by the inputs, so that equal
    /// inputs give equal bytes and different images different UUIDs.
    public var ext4: Ext4Recipe { Ext4Recipe(inputsKey: inputsKey) }
    public var filesystemUUID: String { ext4.filesystemUUID }
    public var hashSeed: String { ext4.hashSeed }

    /// 32 hex digits as a version-4-shaped UUID (the version and variant bits set).
    static func uuid(fromHex hex: String) -> String {
        let hexDigits = Array("0123456789abcdef".utf8)
        var digits = Array(hex.lowercased().utf8.prefix(32).map { hexDigits.contains($0) ? $0 : UInt8(ascii: "0") })
        while digits.count < 32 { digits.append(UInt8(ascii: "0")) }
        digits[12] = UInt8(ascii: "4")
        digits[16] = hexDigits[8 | ((hexDigits.firstIndex(of: digits[16]) ?? 0) & 3)]
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(decoding: digits[$0], as: UTF8.self) }.joined(separator: "-")
    }

    /// mke2fs's configuration, written beside the tree and named by MKE2FS_CONFIG, so that the
    /// host's /etc/mke2fs.conf cannot change the features. Debian's ext4 defaults without the
    /// journal: the image is shared read-only (each VM writes to an overlay of its own).
    public static let mke2fsConfiguration = """
        [defaults]
        \tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
        \tdefault_mntopts = acl,user_xattr
        \tenable_periodic_fsck = 0
        \tblocksize = 4096
        \tinode_size = 256
        \tinode_ratio = 16384

        [fs_types]
        \text4 = {
        \t\tfeatures = extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
        \t}

        """

    public func mke2fsArguments(program: String, tree: String, image: String, inodes: Int) -> [String] {
        ext4.mke2fsArguments(program: program, tree: tree, image: image, inodes: inodes)
    }

    /// The environment every program of the build gets: the parent's PATH (with the sbin
    /// directories) and proxy settings, nothing else of it; the C locale, UTC, and the fixed time.
    public static func environment(parent: [String: String], extra: [String: String] = [:]) -> [String] {
        var values: [String: String] = [:]
        let path = parent["PATH"] ?? "/usr/bin:/bin"
        var directories = path.split(separator: ":").map(String.init)
        for sbin in ["/usr/sbin", "/sbin"] where !directories.contains(sbin) { directories.append(sbin) }
        values["PATH"] = directories.joined(separator: ":")
        for key in ["http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"] {
            if let value = parent[key] { values[key] = value }
        }
        values["LC_ALL"] = "C"
        values["TZ"] = "UTC"
        values["SOURCE_DATE_EPOCH"] = String(DebianImageRequest.sourceDateEpoch)
        values["E2FSPROGS_FAKE_TIME"] = String(DebianImageRequest.sourceDateEpoch)
        for (key, value) in extra { values[key] = value }
        return values.keys.sorted().map { "\($0)=\(values[$0]!)" }
    }

    /// debugfs commands that set the change time of `inodes` to the fixed time. mke2fs -d copies
    /// each file's ctime from the tree, which no call can set: the kernel stamps it with the
    /// clock whenever a file changes.
    public static func ctimeScript(inodes: [Int]) -> String {
        inodes.map { "sif <\($0)> ctime @\(DebianImageRequest.sourceDateEpoch)\n" }.joined()
    }
}

/// Reading what the programs of a build print.
public enum BuildOutput {
    /// "mmdebstrap 1.3.5" → "1.3.5".
    public static func mmdebstrapVersion(_ text: String) -> String? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard words.count >= 2, words[0] == "mmdebstrap" else { return nil }
        return String(words[1])
    }

    /// "mke2fs 1.47.0 (5-Feb-2023)\n\tUsing EXT2FS Library version 1.47.0" → "1.47.0".
    public static func e2fsprogsVersion(_ text: String) -> String? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" })
        guard words.count >= 2, words[0] == "mke2fs" else { return nil }
        return String(words[1])
    }

    /// `dpkg-query -W -f '${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n'`:
    /// the installed packages ("ii"), sorted by name.
    public static func installedPackages(_ text: String) throws(ImageError) -> [ImagePackage] {
        var packages: [ImagePackage] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 4, !fields[1].isEmpty, !fields[2].isEmpty else {
                throw .failed("dpkg-query printed a line that is not STATUS\\tNAME\\tVERSION\\tARCH: \(line.prefix(200))")
            }
            guard fields[0].hasPrefix("ii") else { continue }
            packages.append(ImagePackage(name: String(fields[1]), version: String(fields[2]), architecture: String(fields[3])))
        }
        return packages.sorted { $0.name < $1.name }
    }

    /// dumpe2fs's report → the inodes in use that came from the tree: the root directory and
    /// every used one from the first non-reserved inode on. Reads "Inode count:", "First
    /// inode:" and each group's "  Free inodes: A-B, C, ..." line.
    public static func inodesInUse(dumpe2fs text: String) throws(ImageError) -> [Int] {
        var count: Int?
        var first: Int?
        var free: [ClosedRange<Int>] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("Inode count:") { count = Int(line.dropFirst(12).trimmingSpaces()) }
            else if line.hasPrefix("First inode:") { first = Int(line.dropFirst(12).trimmingSpaces()) }
            else if line.hasPrefix("  Free inodes:") {
                for item in line.dropFirst(14).split(separator: ",") where !item.trimmingSpaces().isEmpty {
                    let bounds = item.trimmingSpaces().split(separator: "-", omittingEmptySubsequences: false)
                    guard (1...2).contains(bounds.count), let low = Int(bounds[0]), let high = Int(bounds[bounds.count - 1]), low <= high else {
                        throw .failed("dumpe2fs printed a free inode range that is not A-B: \(item.prefix(80))")
                    }
                    free.append(low...high)
                }
            }
        }
        guard let count, let first, count > 0, count <= 1 << 32, first > 2, first <= count else {
            throw .failed("dumpe2fs printed no inode count or first inode")
        }
        free.sort { $0.lowerBound < $1.lowerBound }
        var used = [2]
        var next = first
        for range in free where range.upperBound >= next {
            if range.lowerBound > next { used += Array(next..<min(range.lowerBound, count + 1)) }
            next = max(next, range.upperBound + 1)
        }
        if next <= count { used += Array(next...count) }
        return used
    }

    /// Why mmdebstrap failed, from its last lines: a package or suite the archive lacks is the
    /// request's fault; an archive it cannot reach, or anything else, is not.
    public static func mmdebstrapFailure(lines: [String], request: DebianImageRequest, status: String) -> ImageError {
        var missing: [String] = []
        for line in lines {
            for marker in ["E: Unable to locate package ", "E: Package '", "E: Couldn't find any package by glob '"] {
                guard let range = line.firstRange(of: marker) else { continue }
                let name = line[range.upperBound...].prefix { $0 != " " && $0 != "'" }
                if !name.isEmpty, !missing.contains(String(name)) { missing.append(String(name)) }
            }
        }
        if !missing.isEmpty {
            let list = missing.joined(separator: ", ")
            return .badInput("Debian \(request.suite) has no package \(list) (\(request.architecture)): check the name with apt-cache policy \(missing[0])")
        }
        let network = ["Temporary failure resolving", "Could not resolve", "Failed to fetch", "Unable to connect", "Network is unreachable",
                       "Connection timed out", "Could not connect", "Connection failed", "No route to host"]
        if let line = lines.first(where: { line in network.contains { line.contains($0) } }) {
            return .failed("cannot reach the Debian archive: \(line.trimmingSpaces())")
        }
        if let line = lines.first(where: { $0.contains("does not have a Release file") || $0.contains("no longer has a Release file") }) {
            return .badInput("suite \(request.suite) is not in the Debian archive at \(request.mirror): \(line.trimmingSpaces())")
        }
        let last = lines.last(where: { $0.hasPrefix("E: ") }) ?? lines.last(where: { !$0.isEmpty }) ?? "no output"
        return .failed("mmdebstrap \(status): \(last.trimmingSpaces())")
    }
}

/// One installed package, as dpkg-query names it.
public struct ImagePackage: Codable, Equatable, Sendable {
    public var name: String
    public var version: String
    public var architecture: String

    public init(name: String, version: String, architecture: String) {
        self.name = name
        self.version = version
        self.architecture = architecture
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\r" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" { s = s.dropLast() }
        return String(s)
    }
}
