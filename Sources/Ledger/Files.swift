import Glibc
import POSIX

/// The few file operations this module makes beyond POSIX's `FileIO`.
enum Files {
    /// The whole file, refused past `limit` bytes (sysfs attributes and the ledger are small).
    static func read(_ path: String, limit: Int = 1 << 20) throws(SystemError) -> [UInt8] {
        try FileIO.readFile(path, limit: limit)
    }

    static func readText(_ path: String) throws(SystemError) -> String {
        String(decoding: try read(path), as: UTF8.self)
    }

    /// A symlink's target; nil when there is no such link.
    static func readLink(_ path: String) throws(SystemError) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBufferPointer { readlink(path, $0.baseAddress!, $0.count) }
        if count < 0 {
            if errno == ENOENT { return nil }
            throw SystemError("readlink", subject: path)
        }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// `root` + `relative`, with one slash between ("/" + "proc/meminfo" is "/proc/meminfo").
    static func join(_ root: String, _ relative: String) -> String {
        let base = root.hasSuffix("/") ? String(root.dropLast()) : root
        return base + "/" + relative
    }
}

extension String {
    /// The last path component ("../../kernel/iommu_groups/12" → "12").
    var lastPathComponent: String {
        String(split(separator: "/", omittingEmptySubsequences: true).last ?? "")
    }
}
