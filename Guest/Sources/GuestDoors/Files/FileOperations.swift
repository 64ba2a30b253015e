import Doors
import Glibc
import POSIX

/// The file requests of the protocol as plain system calls. Each throws the failing call's
/// errno, which the connection turns into an Error frame.
enum FileOperations {
    /// Opens (and maybe creates) the file of a WriteFile request for writing.
    static func openForWriting(_ request: WriteFileRequest) throws(SystemError) -> Descriptor {
        var flags = O_WRONLY | O_CLOEXEC | O_NOCTTY
        if request.options.contains(.create) { flags |= O_CREAT }
        if request.options.contains(.truncate) { flags |= O_TRUNC }
        if request.options.contains(.exclusive) { flags |= O_EXCL }
        if request.options.contains(.append) { flags |= O_APPEND }
        let fd = retryingEINTR { open(request.path, flags, mode_t(request.permissions)) }
        guard fd >= 0 else { throw SystemError("open", subject: request.path) }
        return Descriptor(fd)
    }

    /// Opens a file for ReadFile. O_NONBLOCK keeps a FIFO from blocking the open; it does not
    /// change reads of a regular file.
    static func openForReading(_ path: String) throws(SystemError) -> Descriptor {
        let fd = retryingEINTR { open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK) }
        guard fd >= 0 else { throw SystemError("open", subject: path) }
        return Descriptor(fd)
    }

    /// stat(2) or lstat(2), as the request asks.
    static func stat(_ request: StatRequest) throws(SystemError) -> FileStat {
        var info = Glibc.stat()
        let result = fstatat(AT_FDCWD, request.path, &info, request.followSymlinks ? 0 : AT_SYMLINK_NOFOLLOW)
        guard result == 0 else { throw SystemError(request.followSymlinks ? "stat" : "lstat", subject: request.path) }
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
    static func resolve(_ path: String) throws(SystemError) -> String {
        guard let resolved = realpath(path, nil) else { throw SystemError("realpath", subject: path) }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func fileType(mode: mode_t) -> FileType {
        switch mode & S_IFMT {
        case S_IFREG: .regular
        case S_IFDIR: .directory
        case S_IFLNK: .symlink
        default: .other
        }
    }

    /// mkdir(2); with `parents`, every missing ancestor too (mode 0755), and an existing
    /// directory is success.
    static func makeDirectory(_ request: MkdirRequest) throws(SystemError) {
        let mode = mode_t(request.permissions)
        guard request.parents else {
            guard mkdir(request.path, mode) == 0 else { throw SystemError("mkdir", subject: request.path) }
            return
        }
        let components = request.path.split(separator: "/")
        var prefix = ""
        for (index, component) in components.enumerated() {
            prefix += "/" + component
            let last = index == components.count - 1
            if mkdir(prefix, last ? mode : 0o755) == 0 { continue }
            let error = errno
            guard error == EEXIST else { throw SystemError("mkdir", errno: error, subject: prefix) }
            // Something is there: fine if it is (or links to) a directory.
            var info = Glibc.stat()
            guard fstatat(AT_FDCWD, prefix, &info, 0) == 0 else { throw SystemError("stat", subject: prefix) }
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw SystemError("mkdir", errno: last ? EEXIST : ENOTDIR, subject: last ? prefix : request.path)
            }
        }
    }

    /// Removes a file, symlink or empty directory; with `recursive`, a whole tree. Symlinks are
    /// removed, never followed.
    static func remove(_ request: RemoveRequest) throws(SystemError) {
        var info = Glibc.stat()
        guard lstat(request.path, &info) == 0 else { throw SystemError("lstat", subject: request.path) }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            guard unlink(request.path) == 0 else { throw SystemError("unlink", subject: request.path) }
            return
        }
        if request.recursive {
            let fd = retryingEINTR { open(request.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            guard fd >= 0 else { throw SystemError("open", subject: request.path) }
            try removeContents(of: Descriptor(fd), path: request.path, depth: 0)
        }
        guard rmdir(request.path) == 0 else { throw SystemError("rmdir", subject: request.path) }
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

    init(path: String) throws(SystemError) {
        self.path = path
        guard let stream = opendir(path) else { throw SystemError("opendir", subject: path) }
        self.stream = stream
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
