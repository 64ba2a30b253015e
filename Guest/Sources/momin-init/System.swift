import Glibc
import POSIX

/// Read-only facts about the running system.
enum System {
    /// Online CPUs, as sysconf(3) _SC_NPROCESSORS_ONLN reports them.
    static func onlineCPUs() -> Int {
        sysconf(Int32(_SC_NPROCESSORS_ONLN))
    }

    /// The kernel release string from uname(2), e.g. "6.1.0-56-cloud-amd64".
    static func kernelRelease() -> String {
        var names = utsname()
        guard uname(&names) == 0 else { return "unknown" }
        return withUnsafeBytes(of: &names.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Seconds since boot: the first field of /proc/uptime (proc(5)).
    static func uptime() -> String {
        let text = readFile("/proc/uptime") ?? ""
        return text.split(separator: " ").first.map(String.init) ?? "unknown"
    }

    /// The words of /proc/cmdline.
    static func kernelCommandLine() -> [String] {
        (readFile("/proc/cmdline") ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" })
            .map(String.init)
    }
}

/// The whole content of a small file, or nil (with the error printed) if it cannot be read.
func readFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        Console.error("open \(path): \(errnoDetail(errno))")
        return nil
    }
    defer { close(fd) }
    do { return String(decoding: try FileIO.readAll(fd, limit: 1 << 20), as: UTF8.self) } catch {
        Console.error("read \(path): \(errnoDetail(error.errno))")
        return nil
    }
}
