import Glibc

/// When a process started: field 22 of /proc/PID/stat (proc(5), `starttime`), in clock ticks
/// since boot. With the pid, it names one process for good: a pid the kernel hands out again
/// comes with a later start.
public enum ProcessStart {
    public static func of(_ pid: Int32) -> UInt64? {
        guard let text = readText("/proc/\(pid)/stat") else { return nil }
        return parse(text)
    }

    /// The start time from a stat line; the command name (field 2, in parentheses) may hold
    /// spaces and parentheses itself, so fields are counted after its last ')'.
    public static func parse(_ stat: String) -> UInt64? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state), so field 22 is fields[19].
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }

    private static func readText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 1024)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return String(decoding: bytes[..<n], as: UTF8.self)
    }
}
