import Glibc
import POSIX

/// The small text files a VM's registry directory holds (pid, info, parent, jail, governance).
enum SmallFiles {
    /// The file's text, at most `limit` bytes of it; nil when it cannot be read.
    static func read(_ path: String, limit: Int = 65536) -> String? {
        let fd = retryingEINTR { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: limit)
        var total = 0
        while total < limit {
            let n = bytes.withUnsafeMutableBytes { raw in retryingEINTR { Glibc.read(fd, raw.baseAddress! + total, limit - total) } }
            if n <= 0 { break }
            total += n
        }
        return String(decoding: bytes[..<total], as: UTF8.self)
    }

    /// Creates or replaces the file (mode 0600) with `text`.
    static func write(_ path: String, _ text: String) throws(HostError) {
        try write(path, Array(text.utf8), flags: O_TRUNC)
    }

    /// Writes `bytes` to a new file (mode 0600); an existing file is an error.
    static func create(_ path: String, _ bytes: [UInt8]) throws(HostError) {
        try write(path, bytes, flags: O_EXCL)
    }

    private static func write(_ path: String, _ bytes: [UInt8], flags: Int32) throws(HostError) {
        let fd = retryingEINTR { open(path, O_WRONLY | O_CREAT | flags | O_CLOEXEC, 0o600) }
        guard fd >= 0 else { throw .failed("cannot write \(path): \(describeErrno())") }
        defer { close(fd) }
        do { try FileIO.writeAll(fd, bytes) } catch { throw .failed("cannot write \(path): \(error.reason)") }
    }
}

extension String {
    /// Without trailing newlines and spaces.
    func trimmingNewline() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == " " { s = s.dropLast() }
        return String(s)
    }
}
