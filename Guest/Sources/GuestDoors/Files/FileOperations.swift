import CGuestSys
import Doors
import Glibc
import POSIX

/// The file requests of the protocol as plain system calls. Each throws the failing call's
/// errno, which the connection turns into an Error frame.
///
/// Every path the host sends has been resolved (and, for a governed call, judged) on the host:
/// it is walked here without following any symlink (openat2 with RESOLVE_NO_SYMLINKS, and
/// O_NOFOLLOW on the last name), so that what is opened is what was judged. A symlink met on
/// the way means the path changed since it was resolved: the call fails with ELOOP
/// (docs/doors-protocol.md, "Paths").
enum FileOperations {
    /// Opens `path` without following a symlink anywhere in it; close-on-exec.
    static func openWithoutSymlinks(_ path: String, _ flags: Int32, mode: mode_t = 0, call: String = "open") throws(SystemError) -> Descriptor {
        let fd = retryingEINTR { guest_open_no_symlinks(AT_FDCWD, path, flags | O_CLOEXEC, UInt32(mode)) }
        guard fd >= 0 else { throw SystemError(call, subject: path) }
        return Descriptor(fd)
    }

    /// Opens (and maybe creates) the file of a WriteFile request for writing.
    static func openForWriting(_ request: WriteFileRequest) throws(SystemError) -> Descriptor {
        var flags = O_WRONLY | O_NOCTTY | O_NOFOLLOW
        if request.options.contains(.create) { flags |= O_CREAT }
        if request.options.contains(.truncate) { flags |= O_TRUNC }
        if request.options.contains(.exclusive) { flags |= O_EXCL }
        if request.options.contains(.append) { flags |= O_APPEND }
        return try openWithoutSymlinks(request.path, flags, mode: mode_t(request.permissions))
    }

    /// Opens a file for ReadFile. O_NONBLOCK keeps a FIFO from blocking the open; it does not
    /// change reads of a regular file.
    static func openForReading(_ path: String) throws(SystemError) -> Descriptor {
        try openWithoutSymlinks(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW)
    }

    /// stat(2) or lstat(2), as the request asks: the path is opened as itself (O_PATH), with
    /// O_NOFOLLOW for lstat so that a final symlink is described rather than refused.
    static func stat(_ request: StatRequest) throws(SystemError) -> FileStat {
        let call = request.followSymlinks ? "stat" : "lstat"
        let file = try openWithoutSymlinks(request.path, guest_o_path | (request.followSymlinks ? 0 : O_NOFOLLOW), call: call)
        var info = Glibc.stat()
        guard fstat(file.raw, &info) == 0 else { throw SystemError(call, subject: request.path) }
        return FileStat(
            type: fileType(mode: info.st_mode),
            permissions: UInt32(info.st_mode) & DoorsLimits.maxPermissions,
            size: UInt64(max(0, info.st_size)),
            mtimeSeconds: Int64(info.st_mtim.tv_sec),
            mtimeNanoseconds: UInt32(clamping: min(max(0, info.st_mtim.tv_nsec), 999_999_999)),
            nlink: UInt64(info.st_nlink),
            uid: UInt32(info.st_uid),
            gid: UInt32(info.st_gid))
    }

    /// realpath(3): the canonical path the kernel reaches for `path`, every symlink followed.
    /// The one request that follows symlinks: it is how the host learns what a path names.
    static func resolve(_ path: String) throws(SystemError) -> String {
        guard let resolved = realpath(path, nil) else { throw SystemError("realpath", subject: path) }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The directory that holds `path` (opened as itself, without symlinks) and the last name.
    /// The root has no parent: EINVAL, as the calls below can do nothing with it.
    static func parent(of path: String, call: String) throws(SystemError) -> (Descriptor, String) {
        guard let slash = path.lastIndex(of: "/"), path != "/" else { throw SystemError(call, errno: EINVAL, subject: path) }
        let name = String(path[path.index(after: slash)...])
        guard !name.isEmpty, name != ".", name != ".." else { throw SystemError(call, errno: EINVAL, subject: path) }
        let directory = slash == path.startIndex ? "/" : String(path[..<slash])
        return (try openWithoutSymlinks(directory, guest_o_path | O_DIRECTORY, call: call), name)
    }

    static func fileType(mode: mode_t) -> FileType {
        switch mode & S_IFMT {
        case S_IFREG: .regular
        case S_IFDIR: .directory
        case S_IFLNK: .symlink
        default: .other
        }
    }

    /// mkdir(2) in the directory that holds the path; with `parents`, every missing ancestor too
    /// (mode 0755), each made in the one before it, and an existing directory is success. No
    /// symlink is followed on the way.
    static func makeDirectory(_ request: MkdirRequest) throws(SystemError) {
        let mode = mode_t(request.permissions)
        guard request.parents else {
            let (parent, name) = try parent(of: request.path, call: "mkdir")
            guard mkdirat(parent.raw, name, mode) == 0 else { throw SystemError("mkdir", subject: request.path) }
            return
        }
        let components = request.path.split(separator: "/").map(String.init)
        var directory = try openWithoutSymlinks("/", guest_o_path | O_DIRECTORY, call: "mkdir")
        var prefix = ""
        for (index, component) in components.enumerated() {
            prefix += "/" + component
            let last = index == components.count - 1
            if mkdirat(directory.raw, component, last ? mode : 0o755) != 0 {
                let error = errno
                guard error == EEXIST else { throw SystemError("mkdir", errno: error, subject: prefix) }
            }
            // Something is there now: go on only if it is a directory, and not through a symlink.
            let next = retryingEINTR { guest_open_no_symlinks(directory.raw, component, guest_o_path | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0) }
            guard next >= 0 else {
                let error = errno == ENOTDIR ? (last ? EEXIST : ENOTDIR) : errno
                throw SystemError("mkdir", errno: error, subject: last ? prefix : request.path)
            }
            directory = Descriptor(next)
        }
    }

    /// Removes a file, symlink or empty directory; with `recursive`, a whole tree. Symlinks are
    /// removed, never followed, and the directory that holds the path is reached without one.
    static func remove(_ request: RemoveRequest) throws(SystemError) {
        let (parent, name) = try parent(of: request.path, call: "remove")
        var info = Glibc.stat()
        guard fstatat(parent.raw, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { throw SystemError("lstat", subject: request.path) }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            guard unlinkat(parent.raw, name, 0) == 0 else { throw SystemError("unlink", subject: request.path) }
            return
        }
        if request.recursive {
            let fd = retryingEINTR { openat(parent.raw, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            guard fd >= 0 else { throw SystemError("open", subject: request.path) }
            try removeContents(of: Descriptor(fd), path: request.path, depth: 0)
        }
        guard unlinkat(parent.raw, name, AT_REMOVEDIR) == 0 else { throw SystemError("rmdir", subject: request.path) }
    }

    /// How deep `remove` descends. Each level holds one descriptor and a stack frame; deeper
    /// trees than this fail with ELOOP (notADirectory) rather than exhaust either.
    static let maxRemoveDepth = 256

    private static func removeContents(of directory: Descriptor, path: String, depth: Int) throws(SystemError) {
        guard depth < maxRemoveDepth else { throw SystemError("remove", errno: ELOOP, subject: path) }
        // Read every name first: removing entries while readdir walks the directory may skip some.
        let names = try DirectoryReader(duplicating: directory, path: path).allRawNames()
        for name in names {
            let display = path + "/" + String(decoding: name.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
            var info = Glibc.stat()
            let found = fstatat(directory.raw, name, &info, AT_SYMLINK_NOFOLLOW)
            guard found == 0 else {
                if errno == ENOENT { continue }  // removed by someone else meanwhile
                throw SystemError("fstatat", subject: display)
            }
            let isDirectory = info.st_mode & S_IFMT == S_IFDIR
            if isDirectory {
                let child = retryingEINTR { openat(directory.raw, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
                guard child >= 0 else { throw SystemError("openat", subject: display) }
                try removeContents(of: Descriptor(child), path: display, depth: depth + 1)
            }
            let removed = unlinkat(directory.raw, name, isDirectory ? AT_REMOVEDIR : 0)
            guard removed == 0 else { throw SystemError("unlinkat", subject: display) }
        }
    }
}

/// Reads a directory's entries a batch at a time (readdir(3)), skipping "." and "..".
final class DirectoryReader {
    private var stream: OpaquePointer?
    private let path: String

    /// Opens the directory at `path` without following a symlink anywhere in it.
    convenience init(path: String) throws(SystemError) {
        let directory = try FileOperations.openWithoutSymlinks(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, call: "opendir")
        try self.init(duplicating: directory, path: path)
    }

    /// Reads the directory open as `directory` through a duplicate, leaving `directory` open.
    init(duplicating directory: Descriptor, path: String) throws(SystemError) {
        self.path = path
        let copy = fcntl(directory.raw, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw SystemError("fcntl(F_DUPFD_CLOEXEC)", subject: path) }
        guard let stream = fdopendir(copy) else {
            let error = SystemError("fdopendir", subject: path)
            _ = Glibc.close(copy)
            throw error
        }
        self.stream = stream
    }

    deinit {
        if let stream { closedir(stream) }
    }

    /// Up to `limit` entries; an empty array at the end. Names that are not valid UTF-8 cannot
    /// travel in the protocol and are skipped.
    func next(limit: Int) throws(SystemError) -> [DirectoryEntry] {
        var entries: [DirectoryEntry] = []
        while entries.count < limit, let (name, type) = try nextRaw() {
            guard let text = String(validating: name.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self) else { continue }
            entries.append(DirectoryEntry(name: text, type: type))
        }
        return entries
    }

    /// Every remaining name, NUL-terminated, as raw bytes.
    func allRawNames() throws(SystemError) -> [[CChar]] {
        var names: [[CChar]] = []
        while let (name, _) = try nextRaw() { names.append(name) }
        return names
    }

    /// The next name (NUL-terminated) and its type, or nil at the end.
    private func nextRaw() throws(SystemError) -> ([CChar], FileType)? {
        guard let stream else { return nil }
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw SystemError("readdir", subject: path) }
                return nil
            }
            var name = withUnsafeBytes(of: &entry.pointee.d_name) { raw in raw.prefix { $0 != 0 }.map { CChar(bitPattern: $0) } }
            let dot = CChar(bitPattern: UInt8(ascii: "."))
            if name == [dot] || name == [dot, dot] { continue }
            name.append(0)
            return (name, type(of: entry.pointee.d_type, name: name))
        }
    }

    private func type(of directoryType: UInt8, name: [CChar]) -> FileType {
        switch Int32(directoryType) {
        case Int32(DT_REG): return .regular
        case Int32(DT_DIR): return .directory
        case Int32(DT_LNK): return .symlink
        case Int32(DT_UNKNOWN):
            // Some filesystems do not fill d_type; ask the inode.
            guard let stream else { return .other }
            var info = Glibc.stat()
            let found = fstatat(dirfd(stream), name, &info, AT_SYMLINK_NOFOLLOW)
            return found == 0 ? FileOperations.fileType(mode: info.st_mode) : .other
        default: return .other
        }
    }
}
