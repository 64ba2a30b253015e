import Glibc

/// The filesystems every guest needs before anything else: proc(5), sysfs(5) and devtmpfs.
/// A filesystem that is already mounted (EBUSY) is fine.
func mountEarlyFilesystems() {
    for (type, target) in [("proc", "/proc"), ("sysfs", "/sys"), ("devtmpfs", "/dev")] {
        if mkdir(target, 0o755) != 0 && errno != EEXIST {
            Console.error("mkdir \(target): \(errnoDetail(errno))")
        }
        // mount(2): source, target, filesystem type, flags, data.
        if mount(type, target, type, UInt(MS_NOSUID), nil) != 0 && errno != EBUSY {
            Console.error("mount \(type) on \(target): \(errnoDetail(errno))")
        }
    }
}
