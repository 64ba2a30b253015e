import Glibc

/// A failed system call on a path: "open /sys/x: No such file or directory".
struct SystemCallError: Error, CustomStringConvertible {
    let call: String
    let path: String
    let code: Int32

    init(_ call: String, _ path: String, _ code: Int32 = errno) {
        self.call = call
        self.path = path
        self.code = code
    }

    var reason: String { String(cString: strerror(code)) }
    var description: String { "\(call) \(path): \(reason)" }
}

/// The few file operations this module makes, each retrying EINTR.
enum Files {
    /// The whole file, refused past `limit` bytes (sysfs attributes and the ledger are small).
    static func read(_ path: String, limit: Int = 1 << 20) throws(SystemCallError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError("open", path) }
        defer { close(fd) }
        return try readAll(fd, path: path, limit: limit)
    }

    static func readAll(_ fd: Int32, path: String, limit: Int) throws(SystemCallError) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemCallError("read", path)
            }
            if count == 0 { return out }
            out.append(contentsOf: buffer[..<count])
            if out.count > limit { throw SystemCallError("read", path, EFBIG) }
        }
    }

    static func readText(_ path: String) throws(SystemCallError) -> String {
        String(decoding: try read(path), as: UTF8.self)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(SystemCallError) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemCallError("write", path)
            }
            offset += count
        }
    }

    /// The names in a directory, without "." and "..", sorted.
    static func list(_ path: String) throws(SystemCallError) -> [String] {
        guard let directory = opendir(path) else { throw SystemCallError("opendir", path) }
        defer { closedir(directory) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(directory) else {
                if errno != 0 { throw SystemCallError("readdir", path) }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// A symlink's target; nil when there is no such link.
    static func readLink(_ path: String) throws(SystemCallError) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBufferPointer { readlink(path, $0.baseAddress!, $0.count) }
        if count < 0 {
            if errno == ENOENT { return nil }
            throw SystemCallError("readlink", path)
        }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// `root` + `relative`, with one slash between ("/" + "proc/meminfo" is "/proc/meminfo").
    static func join(_ root: String, _ relative: String) -> String {
        let base = root.hasSuffix("/") ? String(root.dropLast()) : root
        return base + "/" + relative
    }

    /// fsync of the directory that holds `path`, so a new name survives power loss.
    static func syncDirectory(of path: String) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) }.map { $0.isEmpty ? "/" : $0 } ?? "."
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }
}

extension String {
    /// The last path component ("../../kernel/iommu_groups/12" → "12").
    var lastPathComponent: String {
        String(split(separator: "/", omittingEmptySubsequences: true).last ?? "")
    }
}
