import Glibc
import POSIX

/// The root tree mmdebstrap leaves, made fit to become an image: host-specific and changing
/// files removed, every time clamped, and its size counted. Nothing here follows a symlink or
/// crosses into another file system.
enum ImageTree {
    /// Files mmdebstrap copies from the host or that name one machine or one run: the host's
    /// resolver and name, machine ids, apt's locks and binary caches, dpkg's and debconf's
    /// backup copies.
    static let removedFiles = [
        "etc/resolv.conf", "etc/hostname", "etc/machine-id", "var/lib/dbus/machine-id",
        "var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin", "var/cache/apt/archives/lock",
        "var/lib/apt/lists/lock", "var/cache/ldconfig/aux-cache",
        "var/cache/debconf/config.dat-old", "var/cache/debconf/templates.dat-old", "var/cache/debconf/passwords.dat-old",
        "var/lib/dpkg/status-old", "var/lib/dpkg/diversions-old", "var/lib/dpkg/statoverride-old",
        "var/log/dpkg.log", "var/log/alternatives.log", "var/log/apt/history.log", "var/log/apt/term.log", "var/log/apt/eipp.log.xz",
    ]
    /// Directories emptied (kept themselves, and a `partial` directory in them, which apt
    /// needs): apt's lists and downloads, and whatever a maintainer script left in /tmp or /run.
    static let emptiedDirectories = ["var/lib/apt/lists", "var/cache/apt/archives", "tmp", "var/tmp", "run"]

    static func tidy(_ root: String) throws(ImageError) {
        for file in removedFiles where reachable(root, file) && unlink(root + "/" + file) != 0 && errno != ENOENT {
            throw .failed("cannot remove \(root)/\(file): \(describeErrno())")
        }
        for directory in emptiedDirectories where reachable(root, directory) {
            let path = root + "/" + directory
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { continue }
            try empty(path, device: info.st_dev, keepPartial: directory.contains("/apt/"))
        }
    }

    /// Whether every directory on `relative`'s way under `root` is a directory, not a symlink:
    /// an imported tree may hold `etc -> /etc`, and tidying must not reach the host's files.
    static func reachable(_ root: String, _ relative: String) -> Bool {
        var path = root
        for component in relative.split(separator: "/").dropLast() {
            path += "/" + component
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return false }
        }
        return true
    }

    private static func empty(_ path: String, device: dev_t, keepPartial: Bool) throws(ImageError) {
        for name in try entries(path) {
            var info = stat()
            if keepPartial, name == "partial", lstat(path + "/partial", &info) == 0, info.st_mode & S_IFMT == S_IFDIR {
                try empty(path + "/partial", device: device, keepPartial: false)
                continue
            }
            let left = try remove(path + "/" + name, device: device)
            if !left.isEmpty { throw .failed("\(left[0]) is another file system inside the tree: unmount it first") }
        }
    }

    /// Sets every atime and mtime to min(mtime, `epoch`), bottom up so that no change to an
    /// entry moves its directory's time again, and counts what mke2fs will need.
    static func clampAndTally(_ root: String, epoch: Int) throws(ImageError) -> TreeTally {
        var rootInfo = stat()
        guard lstat(root, &rootInfo) == 0 else { throw .failed("cannot read \(root): \(describeErrno())") }
        var tally = TreeTally(inodes: 0, blocks: 0)
        var seen = Set<UInt64>()
        try visit(root, info: rootInfo, device: rootInfo.st_dev, epoch: epoch, tally: &tally, seen: &seen)
        return tally
    }

    private static func visit(_ path: String, info: stat, device: dev_t, epoch: Int, tally: inout TreeTally,
                              seen: inout Set<UInt64>) throws(ImageError) {
        guard info.st_dev == device else { throw .failed("\(path) is another file system inside the tree: unmount it first") }
        let kind = info.st_mode & S_IFMT
        if kind == S_IFDIR {
            let names = try entries(path)
            for name in names {
                var child = stat()
                guard lstat(path + "/" + name, &child) == 0 else { throw .failed("cannot read \(path)/\(name): \(describeErrno())") }
                try visit(path + "/" + name, info: child, device: device, epoch: epoch, tally: &tally, seen: &seen)
            }
            tally.inodes += 1
            tally.blocks += ImageSize.directoryBlocks(nameLengths: names.map(\.utf8.count))
        } else if info.st_nlink <= 1 || seen.insert(UInt64(info.st_ino)).inserted {
            tally.inodes += 1
            if kind == S_IFREG || kind == S_IFLNK {
                tally.blocks += ImageSize.fileBlocks(size: Int(info.st_size), isSymlink: kind == S_IFLNK)
            }
        }
        let time = min(Int(info.st_mtim.tv_sec), epoch)
        var times = [timespec(tv_sec: time, tv_nsec: 0), timespec(tv_sec: time, tv_nsec: 0)]
        guard utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw .failed("cannot set the times of \(path): \(describeErrno())")
        }
    }

    /// The names in a directory, "." and ".." left out, sorted.
    static func entries(_ path: String) throws(ImageError) -> [String] {
        do { return try FileIO.listDirectory(path) } catch { throw .failed("cannot list \(path): \(describeErrno(error.errno))") }
    }

    /// Removes `path` and all under it on `device`; what it left because another file system
    /// is mounted there (a mount that a killed mmdebstrap left), which it never enters.
    @discardableResult
    static func remove(_ path: String, device: dev_t? = nil) throws(ImageError) -> [String] {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return [] }
            throw .failed("cannot read \(path): \(describeErrno())")
        }
        if let device, info.st_dev != device { return [path] }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            guard unlink(path) == 0 || errno == ENOENT else { throw .failed("cannot remove \(path): \(describeErrno())") }
            return []
        }
        var left: [String] = []
        for name in try entries(path) { left += try remove(path + "/" + name, device: info.st_dev) }
        if left.isEmpty && rmdir(path) != 0 && errno != ENOENT { throw .failed("cannot remove \(path): \(describeErrno())") }
        return left
    }

    /// The mount points at or under `path`, from /proc/self/mountinfo (field 5).
    static func mounts(under path: String) -> [String] {
        guard let bytes = try? FileIO.readFile("/proc/self/mountinfo", limit: 16 << 20) else { return [] }
        var found: [String] = []
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { continue }
            let point = String(fields[4]).replacingOctalEscapes()
            if point == path || point.hasPrefix(path + "/") { found.append(point) }
        }
        return found
    }
}

extension String {
    /// mountinfo writes space, tab, newline and backslash as three octal digits after a backslash.
    func replacingOctalEscapes() -> String {
        let bytes = Array(utf8)
        func octal(_ c: UInt8) -> UInt8? { (0x30...0x37).contains(c) ? c - 0x30 : nil }
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "\\"), index + 3 < bytes.count,
               let a = octal(bytes[index + 1]), let b = octal(bytes[index + 2]), let c = octal(bytes[index + 3]), a <= 3 {
                out.append(a << 6 | b << 3 | c)
                index += 4
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
