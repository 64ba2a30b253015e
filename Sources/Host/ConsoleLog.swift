import Glibc
import POSIX

/// A VM's console log (its serial console and momin-vmm's messages), read back to explain a
/// failure.
public enum ConsoleLog {
    /// The last `lines` lines of the log's last 16 KiB; nil when it cannot be read.
    public static func tail(of path: String, lines: Int = 20) -> [String]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let size = lseek(fd, 0, SEEK_END)
        let start = max(0, size - 16384)
        var buffer = [UInt8](repeating: 0, count: Int(size - start))
        let n = (try? buffer.withUnsafeMutableBytes { try FileIO.preadFully(fd, into: $0, at: Int(start)) }) ?? 0
        guard n > 0 else { return nil }
        return buffer[..<n].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).suffix(lines)
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// Says the tail of the log through `warn`, under a line that says what it is.
    public static func showTail(of path: String, warn: (String) -> Void) {
        guard let tail = tail(of: path) else { return }
        warn((["the VM's console and log ended with:"] + tail).joined(separator: "\n"))
    }
}
