/// The bounds of the install calls (`HandsCall.install`, `.installFile`; docs/hands.md,
/// "Installing packages").
public enum HandsInstall {
    /// Bytes in an ecosystem's name ("pip").
    public static let maxEcosystemLength = 16
    public static let maxRequirements = 64
    /// Bytes in one requirement (a PEP 508 string; the host parses it).
    public static let maxRequirementLength = 1024
    public static let maxInstallIDLength = 64

    /// An install id: 1 to 64 ASCII letters, digits or `-`.
    public static func isInstallID(_ text: String) -> Bool {
        (1...maxInstallIDLength).contains(text.utf8.count) && text.utf8.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") }
    }

    static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}

/// What an `install` reply's fields say: the install's id, then one line per file in install
/// order, `NAME\tVERSION\tFILENAME\tSIZE\tSHA256` (NAME in PEP 503's normal form, SIZE in
/// decimal bytes, SHA256 64 lowercase hex digits). The guest fetches each file with
/// `installFile` and hands pip exactly these names, versions and hashes.
public struct InstallManifest: Hashable, Sendable {
    public struct File: Hashable, Sendable {
        public var name: String
        public var version: String
        /// A plain file name ending in `.whl`: the guest writes it into a directory of its own.
        public var filename: String
        public var size: UInt64
        public var sha256: String

        public init(name: String, version: String, filename: String, size: UInt64, sha256: String) {
            self.name = name
            self.version = version
            self.filename = filename
            self.size = size
            self.sha256 = sha256
        }

        /// Its line in the reply.
        public var line: String { "\(name)\t\(version)\t\(filename)\t\(size)\t\(sha256)" }

        /// Its line in pip's requirements file, for hash-checking mode (pip's `--require-hashes`).
        public var requirement: String { "\(name)==\(version) --hash=sha256:\(sha256)" }
    }

    public var id: String
    public var files: [File]

    public static let maxFiles = 1024
    public static let maxFileSize: UInt64 = 1 << 40
    public static let maxFileNameLength = 255

    public init(id: String, files: [File]) {
        self.id = id
        self.files = files
    }

    /// The reply's fields.
    public var fields: [String] { [id] + files.map(\.line) }

    /// The manifest in an `install` reply's fields, every line checked; lines are counted
    /// from 1 at the first file.
    public init(fields: [String]) throws(InstallManifestError) {
        guard let id = fields.first else { throw InstallManifestError("no install id") }
        guard HandsInstall.isInstallID(id) else {
            throw InstallManifestError("install id \(Self.quoted(id)) is not 1 to \(HandsInstall.maxInstallIDLength) letters, digits or -")
        }
        let lines = fields.dropFirst()
        guard !lines.isEmpty else { throw InstallManifestError("no files") }
        guard lines.count <= Self.maxFiles else { throw InstallManifestError("\(lines.count) files, at most \(Self.maxFiles)") }
        var files: [File] = []
        // By bytes, as the file system tells names apart.
        var filenames: [[UInt8]: Int] = [:]
        var names: [String: Int] = [:]
        for (index, line) in lines.enumerated() {
            let number = index + 1
            let file = try Self.file(line, number: number)
            if let first = filenames[Array(file.filename.utf8)] {
                throw InstallManifestError("line \(number): FILENAME \(Self.quoted(file.filename)) is on line \(first) too")
            }
            if let first = names[file.name] {
                throw InstallManifestError("line \(number): NAME \(Self.quoted(file.name)) is on line \(first) too")
            }
            filenames[Array(file.filename.utf8)] = number
            names[file.name] = number
            files.append(file)
        }
        self.init(id: id, files: files)
    }

    static func file(_ line: String, number: Int) throws(InstallManifestError) -> File {
        let parts = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        func bad(_ what: String, _ value: String, _ why: String) -> InstallManifestError {
            InstallManifestError("line \(number): \(what) \(quoted(value)) \(why)")
        }
        guard parts.count == 5 else {
            throw InstallManifestError("line \(number): \(parts.count) fields, not 5 (NAME, VERSION, FILENAME, SIZE, SHA256)")
        }
        let (name, version, filename, size, sha256) = (parts[0], parts[1], parts[2], parts[3], parts[4])
        guard isNormalizedName(name) else { throw bad("NAME", name, "is not a normalised project name") }
        guard isVersion(version) else { throw bad("VERSION", version, "is not a version") }
        guard isWheelFileName(filename) else {
            throw bad("FILENAME", filename, "is not a plain .whl file name of at most \(maxFileNameLength) bytes")
        }
        guard let bytes = decimal(size), bytes <= maxFileSize else {
            throw bad("SIZE", size, "is not a whole number of bytes up to \(maxFileSize)")
        }
        guard sha256.utf8.count == 64, sha256.utf8.allSatisfy(isLowercaseHex) else {
            throw bad("SHA256", sha256, "is not 64 lowercase hex digits")
        }
        return File(name: name, version: version, filename: filename, size: bytes, sha256: sha256)
    }

    /// PEP 503's normal form: runs of lowercase letters and digits joined by single `-`, at most
    /// 255 bytes.
    static func isNormalizedName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...255).contains(bytes.count), bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-") else { return false }
        var previous: UInt8 = 0
        for byte in bytes {
            let lower = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            guard lower || (byte == UInt8(ascii: "-") && previous != byte) else { return false }
            previous = byte
        }
        return true
    }

    /// A version as PEP 440 spells one: a letter or digit, then letters, digits and `. ! + _ -`,
    /// at most 255 bytes. Nothing pip would read as an option or a second requirement.
    static func isVersion(_ version: String) -> Bool {
        let bytes = Array(version.utf8)
        guard (1...255).contains(bytes.count), HandsInstall.isAlphanumeric(bytes[0]) else { return false }
        return bytes.allSatisfy { HandsInstall.isAlphanumeric($0) || Array(".!+_-".utf8).contains($0) }
    }

    /// One path component ending in `.whl`: no `/`, not `.` or `..`, no control characters.
    static func isWheelFileName(_ filename: String) -> Bool {
        let bytes = filename.utf8
        return (1...maxFileNameLength).contains(bytes.count) && filename.hasSuffix(".whl") && filename != "." && filename != ".."
            && !bytes.contains(UInt8(ascii: "/")) && !bytes.contains(where: { $0 < 0x20 || $0 == 0x7f })
    }

    /// Decimal digits without a leading zero (but "0"), as the host writes a size.
    static func decimal(_ text: String) -> UInt64? {
        let bytes = Array(text.utf8)
        guard (1...13).contains(bytes.count), bytes.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              bytes.count == 1 || bytes[0] != UInt8(ascii: "0") else { return nil }
        return bytes.reduce(0) { $0 * 10 + UInt64($1 - UInt8(ascii: "0")) }
    }

    static func isLowercaseHex(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }

    /// A value in a message: quoted, control characters as `\xHH`, at most 64 characters shown.
    static func quoted(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(64) {
            if scalar.value < 0x20 || scalar.value == 0x7f {
                out += "\\x" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return "\"" + out + (text.unicodeScalars.count > 64 ? "..." : "") + "\""
    }
}

/// Why an `install` reply's fields are not a manifest.
public struct InstallManifestError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}
