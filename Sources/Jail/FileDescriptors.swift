import CLinux
import Glibc

/// The descriptors the jailer was handed. Everything but stdin, stdout and stderr is closed
/// first thing, so no open file, socket or directory from the caller reaches the jail (an open
/// directory fd alone would undo pivot_root: openat(fd, "..") walks the host).
enum FileDescriptors {
    /// close_range(2) from 3 up, all but `kept` (the liveness pipe, the passed ones); where the kernel lacks it
    /// (before 5.9), each fd listed in /proc/self/fd (proc(5)).
    static func closeInherited(keeping kept: [Int32] = []) throws(JailFailure) {
        // The gaps between the kept descriptors, from 3 up.
        var ranges: [(first: UInt32, last: UInt32)] = []
        var next: UInt32 = 3
        for fd in Set(kept.filter { $0 > 2 }).sorted() {
            if UInt32(fd) > next { ranges.append((next, UInt32(fd) - 1)) }
            next = UInt32(fd) + 1
        }
        ranges.append((next, UInt32.max))
        for (first, last) in ranges where clinux_close_range(first, last) != 0 {
            guard errno == ENOSYS else { throw JailFailure(step: "close inherited file descriptors (close_range)", errno: errno) }
            return try closeListed(keeping: kept)
        }
    }

    private static func closeListed(keeping kept: [Int32]) throws(JailFailure) {
        guard let dir = opendir("/proc/self/fd") else {
            throw JailFailure(step: "close inherited file descriptors: open /proc/self/fd", errno: errno)
        }
        let own = dirfd(dir)
        var open: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if let fd = Int32(name), fd > 2, fd != own, !kept.contains(fd) { open.append(fd) }
        }
        closedir(dir)
        for fd in open { close(fd) }
    }
}

/// The environment: none of the caller's survives (clearenv(3)); the program gets only `--env`.
enum Environment {
    static func clear() throws(JailFailure) {
        try system("clear the environment", { clearenv() == 0 ? 0 : -1 })
    }
}
