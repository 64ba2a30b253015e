import Glibc

/// /proc/PID/stat (proc(5)), read once for every use: the start time that, with the pid, names
/// one process for good (a pid the kernel hands out again comes with a later start), the state,
/// the CPU time.
public enum ProcessStat {
    /// Fields 3 onward (state first) of the process's stat line; nil when it cannot be read.
    public static func fields(of pid: Int32) -> [Substring]? {
        readText("/proc/\(pid)/stat").flatMap(fields)
    }

    /// Fields 3 onward of a stat line. The command name (field 2, in parentheses) may hold
    /// spaces and parentheses itself, so fields are counted after its last ')'.
    public static func fields(_ stat: String) -> [Substring]? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// When the process started (field 22, `starttime`), in clock ticks since boot.
    public static func startTime(of pid: Int32) -> UInt64? {
        fields(of: pid).flatMap(startTime)
    }

    public static func startTime(_ stat: String) -> UInt64? {
        fields(stat).flatMap(startTime)
    }

    /// fields[0] is field 3, so field 22 is fields[19].
    private static func startTime(_ fields: [Substring]) -> UInt64? {
        fields.count > 19 ? UInt64(fields[19]) : nil
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
