import Glibc
import POSIX

/// What an import changed or left out of the layers, for the manifest.
public struct Neutralised: Codable, Equatable, Sendable {
    /// Character and block device nodes, and FIFOs: not made (a guest makes its own in /dev).
    public var deviceNodes = 0
    public var fifos = 0
    /// Files whose setuid or setgid bit was cleared (a directory's setgid, which only passes its
    /// group on, stays).
    public var setIDBits = 0
    /// Entries named from `/`, applied relative to the image's root.
    public var absolutePaths = 0

    public init() {}
}

/// Why a layer could not be applied: refused (the layer's fault, bad input) or a failure here.
public enum LayerError: Error, Equatable, Sendable {
    case refused(TarError)
    case failed(String)
}

/// Applies layers, in order, to a staging directory (OCI image-spec layer.md, "Applying
/// Changesets"): entries are added or replace what is there, `.wh.NAME` deletes NAME from the
/// layers below, `.wh..wh..opq` empties a directory of what the layers below put there.
/// Nothing is followed: every directory on an entry's way is opened with O_NOFOLLOW from the
/// root's descriptor, and a symlink (or a file) where a directory is needed refuses the entry.
final class LayerApplier {
    let root: String
    private let rootFD: Int32
    /// lchown to the header's uid and gid (root only).
    let applyOwnership: Bool
    private(set) var neutralised = Neutralised()
    /// Paths added by the layer being applied, and their ancestors: whiteouts and opaque markers
    /// only delete what came from below.
    private var added: Set<String> = []
    private var addedAncestors: Set<String> = []

    init(root: String, applyOwnership: Bool) throws(ImageError) {
        self.root = root
        self.applyOwnership = applyOwnership
        rootFD = retryingEINTR { open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        guard rootFD >= 0 else { throw .failed("cannot open \(root): \(describeErrno())") }
    }

    deinit { close(rootFD) }

    /// One layer, read to its end.
    func apply<Source: ByteSource>(_ reader: inout TarReader<Source>) throws(LayerError) {
        added = []
        addedAncestors = []
        while true {
            let next: TarEntry?
            do { next = try reader.next() } catch { throw .refused(error) }
            guard let entry = next else { return }
            try apply(entry, &reader)
        }
    }

    private func apply<Source: ByteSource>(_ entry: TarEntry, _ reader: inout TarReader<Source>) throws(LayerError) {
        func refuse(_ problem: TarError.Problem) -> LayerError { .refused(TarError(entry: entry.path, offset: entry.offset, problem)) }
        let path: [String]
        let absolute: Bool
        do { (path, absolute) = try LayerPath.normalize(entry.path) } catch { throw refuse(.badPath(error.why)) }
        guard let name = path.last else { return }  // the root itself: mke2fs makes it (root_owner=0:0)
        if absolute { neutralised.absolutePaths += 1 }
        let parentPath = Array(path.dropLast())
        let role: LayerPath.Role
        do { role = try LayerPath.role(of: name) } catch { throw refuse(.unsupportedWhiteout(error.why)) }
        switch role {
        case .opaque:
            guard let fd = try directory(parentPath, create: false, entry) else { return }
            close(fd)
            try removeLower(parentPath)
            return
        case .whiteout(let target):
            let key = (parentPath + [target]).joined(separator: "/")
            guard !added.contains(key), let fd = try directory(parentPath, create: false, entry) else { return }
            defer { close(fd) }
            try removeEntry(fd, target, key)
            return
        case .entry:
            break
        }
        switch entry.kind {
        case .characterDevice, .blockDevice:
            neutralised.deviceNodes += 1
            return
        case .fifo:
            neutralised.fifos += 1
            return
        default:
            break
        }
        let key = path.joined(separator: "/")
        guard let parent = try directory(parentPath, create: true, entry) else { return }
        defer { close(parent) }
        var existing = stat()
        let exists = fstatat(parent, name, &existing, AT_SYMLINK_NOFOLLOW) == 0
        var mode = entry.mode
        if entry.kind != .directory && mode & 0o6000 != 0 {
            neutralised.setIDBits += 1
            mode &= ~0o6000
        }
        mode &= ~UInt32(0o4000)
        func failed(_ call: String) -> LayerError { .failed("cannot \(call) \(root)/\(key): \(describeErrno())") }

        switch entry.kind {
        case .directory:
            if exists && existing.st_mode & S_IFMT != S_IFDIR { try removeEntry(parent, name, key) }
            if !(exists && existing.st_mode & S_IFMT == S_IFDIR) && mkdirat(parent, name, 0o700) != 0 { throw failed("make directory") }
            let fd = retryingEINTR { openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            guard fd >= 0 else { throw failed("open") }
            defer { close(fd) }
            if applyOwnership && fchown(fd, entry.uid, entry.gid) != 0 { throw failed("chown") }
            if fchmod(fd, mode_t(mode)) != 0 { throw failed("chmod") }
        case .file:
            if exists { try removeEntry(parent, name, key) }
            let fd = retryingEINTR { openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
            guard fd >= 0 else { throw failed("create") }
            defer { close(fd) }
            while true {
                let chunk: ArraySlice<UInt8>?
                do { chunk = try reader.readData() } catch { throw .refused(error) }
                guard let chunk else { break }
                do { try FileIO.writeAll(fd, chunk) } catch { throw .failed("cannot write \(root)/\(key): \(error.reason)") }
            }
            if applyOwnership && fchown(fd, entry.uid, entry.gid) != 0 { throw failed("chown") }
            if fchmod(fd, mode_t(mode)) != 0 { throw failed("chmod") }
            var times = Self.times(entry.mtime)
            if futimens(fd, &times) != 0 { throw failed("set the times of") }
        case .symlink:
            if exists { try removeEntry(parent, name, key) }
            if symlinkat(entry.linkTarget, parent, name) != 0 { throw failed("make symlink") }
            if applyOwnership && fchownat(parent, name, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW) != 0 { throw failed("chown") }
            var times = Self.times(entry.mtime)
            if utimensat(parent, name, &times, AT_SYMLINK_NOFOLLOW) != 0 { throw failed("set the times of") }
        case .hardLink:
            // The target must be in the tree already (this layer or one below), reached without
            // a symlink, and not a directory.
            let target: [String]
            do { target = try LayerPath.normalize(entry.linkTarget).components } catch { throw refuse(.badHardLink("target \(error.why)")) }
            guard let targetName = target.last else { throw refuse(.badHardLink("its target is the root")) }
            let targetParent: Int32?
            do { targetParent = try directory(Array(target.dropLast()), create: false, entry) } catch {
                throw refuse(.badHardLink("its target's path goes through a symlink"))
            }
            guard let targetParent else { throw refuse(.badHardLink("its target \(target.joined(separator: "/")) is not in the tree")) }
            defer { close(targetParent) }
            var info = stat()
            guard fstatat(targetParent, targetName, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw refuse(.badHardLink("its target \(target.joined(separator: "/")) is not in the tree"))
            }
            guard info.st_mode & S_IFMT != S_IFDIR else { throw refuse(.badHardLink("its target is a directory")) }
            if exists && existing.st_ino == info.st_ino && existing.st_dev == info.st_dev { break }
            if exists { try removeEntry(parent, name, key) }
            if linkat(targetParent, targetName, parent, name, 0) != 0 { throw failed("link") }
        case .characterDevice, .blockDevice, .fifo:
            break
        }
        added.insert(key)
        for count in 1..<max(path.count, 1) { addedAncestors.insert(path.prefix(count).joined(separator: "/")) }
    }

    /// The directory at `components`, opened from the root one component at a time with
    /// O_NOFOLLOW; missing ones are made (0755, root's) when `create`, else nil.
    private func directory(_ components: [String], create: Bool, _ entry: TarEntry) throws(LayerError) -> Int32? {
        var fd = retryingEINTR { dup(rootFD) }
        guard fd >= 0 else { throw .failed("cannot dup \(root)'s descriptor: \(describeErrno())") }
        for (index, component) in components.enumerated() {
            var next = retryingEINTR { openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            if next < 0 && errno == ENOENT && create {
                guard mkdirat(fd, component, 0o755) == 0 else {
                    close(fd)
                    throw .failed("cannot make \(root)/\(components.prefix(index + 1).joined(separator: "/")): \(describeErrno())")
                }
                next = retryingEINTR { openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            }
            let reason = errno
            close(fd)
            guard next >= 0 else {
                if reason == ENOENT && !create { return nil }
                // ELOOP: a symlink (O_NOFOLLOW); ENOTDIR: a file or a symlink.
                if reason == ELOOP || reason == ENOTDIR {
                    throw .refused(TarError(entry: entry.path, offset: entry.offset,
                                            .throughSymlink(components.prefix(index + 1).joined(separator: "/"))))
                }
                throw .failed("cannot open \(root)/\(components.prefix(index + 1).joined(separator: "/")): \(describeErrno(reason))")
            }
            fd = next
        }
        return fd
    }

    /// Removes `name` in the directory `parent` (at `key`), a whole directory tree included,
    /// never following a symlink.
    private func removeEntry(_ parent: Int32, _ name: String, _ key: String) throws(LayerError) {
        var info = stat()
        guard fstatat(parent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR {
            // Every component of `key` was opened without following a link: the path names this directory.
            do { try ImageTree.remove(root + "/" + key) } catch { throw .failed(error.message) }
        } else if unlinkat(parent, name, 0) != 0 && errno != ENOENT {
            throw .failed("cannot remove \(root)/\(key): \(describeErrno())")
        }
    }

    /// Removes what is under the directory at `components` except what this layer added.
    private func removeLower(_ components: [String]) throws(LayerError) {
        let prefix = components.joined(separator: "/")
        let path = prefix.isEmpty ? root : root + "/" + prefix
        let names: [String]
        do { names = try ImageTree.entries(path) } catch { throw .failed(error.message) }
        for name in names {
            let key = prefix.isEmpty ? name : prefix + "/" + name
            var info = stat()
            guard lstat(root + "/" + key, &info) == 0 else { continue }
            let isDirectory = info.st_mode & S_IFMT == S_IFDIR
            if addedAncestors.contains(key) && isDirectory {
                try removeLower(components + [name])
            } else if added.contains(key) {
                if isDirectory { try removeLower(components + [name]) }
            } else {
                do { try ImageTree.remove(root + "/" + key) } catch { throw .failed(error.message) }
            }
        }
    }

    static func times(_ mtime: Int64) -> [timespec] {
        let seconds = Int(clamping: max(mtime, 0))
        return [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
    }
}
