import Doors
import Glibc
import POSIX

/// `hands install pip` (docs/hands.md, "Installing packages"): one `install` call, in which the
/// host resolves, judges, fetches and logs every file; then each file fetched with `installFile`
/// calls into a private directory, and the guest's own pip installing from it offline, in
/// hash-checking mode, so that pip checks each file against the SHA-256 the host logged.
public struct PipInstall {
    public var socketPath: String
    /// The Python whose pip installs: a path, or a name looked up on PATH.
    public var python: String
    /// Where the private directory is made.
    public var temporaryRoot: String
    /// A line for stderr, without the `hands: ` before it.
    public var say: (String) -> Void

    public init(socketPath: String, python: String, temporaryRoot: String, say: @escaping (String) -> Void) {
        self.socketPath = socketPath
        self.python = python
        self.temporaryRoot = temporaryRoot
        self.say = say
    }

    /// `$TMPDIR` when it is set and not empty, else /tmp.
    public static func temporaryRoot(environment value: String?) -> String {
        guard let value, !value.isEmpty else { return "/tmp" }
        return value
    }

    /// Installs `requirements`; pip's exit status (128 + a signal that ended it), or the
    /// status of what stopped the install before pip (its line said).
    public func run(requirements: [String]) -> Int32 {
        do throws(HandsClientError) {
            return try install(requirements)
        } catch {
            say(error.message)
            return error.exitStatus
        }
    }

    func install(_ requirements: [String]) throws(HandsClientError) -> Int32 {
        let (fields, _) = try HandsConnection.ok(.install(ecosystem: "pip", requirements: requirements), socketPath: socketPath)
        let manifest: InstallManifest
        do throws(InstallManifestError) {
            manifest = try InstallManifest(fields: fields)
        } catch {
            throw .unreachable("the host's install manifest is not understood: \(error)")
        }
        let directory = try makeDirectory()
        defer { Self.removeTree(directory) }
        for (index, file) in manifest.files.enumerated() {
            try fetch(file, index: UInt32(index), of: manifest.id, into: directory)
            say("fetched \(file.name) \(file.version) \(file.filename) \(file.size) sha256:\(file.sha256)")
        }
        let requirementsFile = directory + "/requirements.txt"
        try write(Array(manifest.files.map { $0.requirement + "\n" }.joined().utf8), to: requirementsFile)
        return try ChildProgram.run(Self.pipArguments(python: python, directory: directory, requirementsFile: requirementsFile))
    }

    /// How pip is run: from the directory only (`--no-index --find-links`), every file checked
    /// against its hash (`--require-hashes`), nothing cached, and past Debian's PEP 668 marker
    /// (`--break-system-packages`: the agent's VM is its own), quiet about running as root.
    static func pipArguments(python: String, directory: String, requirementsFile: String) -> [String] {
        [python, "-m", "pip", "install", "--no-index", "--find-links", directory, "--require-hashes", "--no-cache-dir",
         "--disable-pip-version-check", "--break-system-packages", "--root-user-action=ignore", "-r", requirementsFile]
    }

    // MARK: - Calls

    /// File `index` of the install, piece by piece, until its SIZE bytes are there.
    func fetch(_ file: InstallManifest.File, index: UInt32, of install: String, into directory: String) throws(HandsClientError) {
        let path = directory + "/" + file.filename
        let fd = retryingEINTR { open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        guard fd >= 0 else { throw Self.writeFailed(path, errno) }
        defer { close(fd) }
        var offset: UInt64 = 0
        while offset < file.size {
            let (_, data) = try HandsConnection.ok(.installFile(install: install, file: index, offset: offset), socketPath: socketPath,
                                                  what: "fetching \(file.filename)")
            guard !data.isEmpty else {
                throw .unreachable("the host sent \(file.filename) short: \(offset) of its \(file.size) bytes")
            }
            guard UInt64(data.count) <= file.size - offset else {
                throw .unreachable("the host sent more of \(file.filename) than its \(file.size) bytes (\(data.count) at offset \(offset))")
            }
            do throws(SystemError) { try FileIO.writeAll(fd, data) } catch { throw Self.writeFailed(path, error.errno) }
            offset += UInt64(data.count)
        }
    }

    // MARK: - Files

    /// A new directory only this user can enter (mkdtemp(3): mode 0700).
    func makeDirectory() throws(HandsClientError) -> String {
        var template = Array((temporaryRoot + "/hands-install.XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!).map { String(cString: $0) } }
        guard let made else { throw Self.writeFailed(temporaryRoot, errno) }
        return made
    }

    func write(_ bytes: [UInt8], to path: String) throws(HandsClientError) {
        let fd = retryingEINTR { open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        guard fd >= 0 else { throw Self.writeFailed(path, errno) }
        defer { close(fd) }
        do throws(SystemError) { try FileIO.writeAll(fd, bytes) } catch { throw Self.writeFailed(path, error.errno) }
    }

    /// A file of the install that cannot be written: exit 74 (EX_IOERR).
    static func writeFailed(_ path: String, _ code: Int32) -> HandsClientError {
        HandsClientError(message: "cannot write \(path): \(describeErrno(code))", exitStatus: 74, showsUsage: false)
    }

    /// Removes `path` and, for a directory, everything in it; symlinks are removed, not followed.
    static func removeTree(_ path: String) {
        var status = stat()
        guard lstat(path, &status) == 0 else { return }
        if status.st_mode & S_IFMT == S_IFDIR {
            for name in (try? FileIO.listDirectory(path)) ?? [] { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
