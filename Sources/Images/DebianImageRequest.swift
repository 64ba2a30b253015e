import Glibc

/// What `momin image build debian` is asked for: checked before anything runs, and hashed with
/// the tools' versions into the key that a later build with the same inputs reuses.
public struct DebianImageRequest: Equatable, Sendable {
    /// The name the image gets in the store (several names may share one image).
    public var name: String
    /// The Debian suite (bookworm).
    public var suite: String
    /// Packages on top of the variant: the default set unless `defaultPackages` is off, then `extraPackages`.
    public var extraPackages: [String]
    public var defaultPackages: Bool
    /// The image file's size in bytes; nil: computed from the tree, with headroom.
    public var size: UInt64?
    /// The Debian archive and its security archive.
    public var mirror: String
    public var securityMirror: String
    /// Debian's name for the CPU (amd64, arm64).
    public var architecture: String

    /// What a triage agent needs: python3 and its pip (`hands install pip` installs with it),
    /// file(1), strings (binutils), sha256sum (coreutils), yara, jq, xxd and The Sleuth Kit. All
    /// are in bookworm's main.
    public static let triagePackages = ["binutils", "coreutils", "file", "jq", "python3", "python3-pip", "sleuthkit", "xxd", "yara"]
    public static let defaultMirror = "http://deb.debian.org/debian"
    public static let defaultSecurityMirror = "http://deb.debian.org/debian-security"
    /// mmdebstrap's variant: Essential and Priority: required packages, and apt.
    public static let variant = "minbase"
    /// Every timestamp in the image is at most this: 2023-06-10T00:00:00Z, bookworm's release
    /// day. A constant rather than the newest package's date, which is known only after the
    /// packages are chosen.
    public static let sourceDateEpoch = 1_686_355_200
    /// Changes whenever the builder would make other bytes from the same inputs (a new step,
    /// other mke2fs options), so that old images are not reused for new recipes.
    public static let recipeVersion = 1
    /// Suites that have no -updates or -security companion.
    static let rollingSuites: Set<String> = ["sid", "unstable", "experimental", "rc-buggy"]

    public init(name: String = "debian", suite: String = "bookworm", extraPackages: [String] = [], defaultPackages: Bool = true,
                size: UInt64? = nil, mirror: String = DebianImageRequest.defaultMirror,
                securityMirror: String = DebianImageRequest.defaultSecurityMirror,
                architecture: String = DebianImageRequest.hostArchitecture) {
        self.name = name
        self.suite = suite
        self.extraPackages = extraPackages
        self.defaultPackages = defaultPackages
        self.size = size
        self.mirror = mirror
        self.securityMirror = securityMirror
        self.architecture = architecture
    }

    /// The packages asked for beyond the variant, sorted, each once.
    public var packages: [String] {
        Array(Set((defaultPackages ? Self.triagePackages : []) + extraPackages)).sorted()
    }

    /// The apt sources: the suite, and its -updates and -security unless it is a rolling one.
    public var sources: [String] {
        var lines = ["deb \(mirror) \(suite) main"]
        if !Self.rollingSuites.contains(suite) {
            lines.append("deb \(mirror) \(suite)-updates main")
            lines.append("deb \(securityMirror) \(suite)-security main")
        }
        return lines
    }

    /// Refuses what cannot name an image, a suite, a package or a mirror.
    public func validate() throws(ImageError) {
        try Self.validateName(name)
        let suiteOK = suite.utf8.count <= 32 && suite.utf8.first.map(isLower) == true
            && suite.utf8.allSatisfy { isLower($0) || isDigit($0) || $0 == UInt8(ascii: "-") }
        guard suiteOK else { throw .badInput("suite '\(suite)' is not a Debian suite name (1 to 32 of a-z 0-9 -, starting with a letter)") }
        for package in extraPackages { try Self.validatePackage(package) }
        guard extraPackages.count <= 256 else { throw .badInput("--packages lists \(extraPackages.count) packages: at most 256") }
        for url in [mirror, securityMirror] {
            let ok = (url.hasPrefix("http://") || url.hasPrefix("https://") || url.hasPrefix("file:/"))
                && url.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f } && url.utf8.count <= 512
            guard ok else { throw .badInput("mirror '\(url)' is not an http, https or file URL") }
        }
        if let size, size < ImageSize.smallestImage {
            throw .badInput("--size \(size) bytes is below \(ImageSize.smallestImage / (1 << 20)) MiB, the smallest image")
        }
        guard ["amd64", "arm64", "i386", "armhf", "ppc64el", "s390x", "riscv64"].contains(architecture) else {
            throw .badInput("architecture '\(architecture)' is not one Debian builds")
        }
    }

    /// Names: 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit.
    public static func validateName(_ name: String) throws(ImageError) {
        let bytes = Array(name.utf8)
        let ok = (1...64).contains(bytes.count) && (isLower(bytes[0]) || isDigit(bytes[0]))
            && bytes.allSatisfy { isLower($0) || isDigit($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
        guard ok else { throw .badInput("image name '\(name)' is invalid: use 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit") }
    }

    /// Debian Policy 5.6.1: lowercase letters, digits, + - ., at least two, starting with a letter or digit.
    public static func validatePackage(_ name: String) throws(ImageError) {
        let bytes = Array(name.utf8)
        let ok = (2...100).contains(bytes.count) && (isLower(bytes[0]) || isDigit(bytes[0]))
            && bytes.allSatisfy { isLower($0) || isDigit($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
        guard ok else { throw .badInput("'\(name)' is not a Debian package name (a-z 0-9 + - ., at least two, starting with a letter or digit)") }
    }

    /// `--packages a,b,c`: names separated by commas (spaces around them ignored); empty items are refused.
    public static func parsePackageList(_ text: String) throws(ImageError) -> [String] {
        var names: [String] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let name = item.trimmingSpaces()
            guard !name.isEmpty else { throw .badInput("--packages '\(text)' has an empty item: give names separated by commas") }
            try validatePackage(name)
            names.append(name)
        }
        return names
    }

    /// The key a build with the same inputs is found by: a SHA-256 over everything that decides
    /// the image's bytes except the archive's contents (those are in the manifest's package list).
    public func inputsKey(tools: ToolVersions) -> String {
        var lines = ["momin image recipe \(Self.recipeVersion)", "kind debian", "suite \(suite)", "variant \(Self.variant)",
                     "architecture \(architecture)", "epoch \(Self.sourceDateEpoch)", "size \(size.map(String.init) ?? "auto")",
                     "mmdebstrap \(tools.mmdebstrap)", "e2fsprogs \(tools.e2fsprogs)"]
        lines += sources.map { "source \($0)" }
        lines += packages.map { "package \($0)" }
        return sha256Hex(lines.joined(separator: "\n") + "\n")
    }

    /// dpkg's name for this machine's CPU.
    public static var hostArchitecture: String {
        var names = utsname()
        uname(&names)
        let machine = withUnsafeBytes(of: &names.machine) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
        return debianArchitecture(machine: machine)
    }

    static func debianArchitecture(machine: String) -> String {
        switch machine {
        case "x86_64": "amd64"
        case "aarch64", "arm64": "arm64"
        case "i386", "i486", "i586", "i686": "i386"
        case "ppc64le": "ppc64el"
        case "riscv64": "riscv64"
        case "s390x": "s390x"
        default: machine
        }
    }
}

/// The versions of the programs that make an image, part of its inputs key and its manifest.
public struct ToolVersions: Equatable, Sendable {
    public var mmdebstrap: String
    public var e2fsprogs: String

    public init(mmdebstrap: String, e2fsprogs: String) {
        self.mmdebstrap = mmdebstrap
        self.e2fsprogs = e2fsprogs
    }
}

private func isLower(_ c: UInt8) -> Bool { (0x61...0x7a).contains(c) }
private func isDigit(_ c: UInt8) -> Bool { (0x30...0x39).contains(c) }
