import Glibc

/// The filesystems every guest needs before anything else: proc(5), sysfs(5), devtmpfs, and
/// devpts under it for pseudo-terminals (dpkg and others open one; the kernel's
/// Documentation/filesystems/devpts.rst: the devtmpfs `/dev/ptmx` reaches this instance). They
/// move with /dev when momin-init switches to a root image. A filesystem that is already
/// mounted (EBUSY) is fine.
func mountEarlyFilesystems() {
    let early: [(type: String, target: String, flags: Int, options: String?)] = [
        ("proc", "/proc", MS_NOSUID, nil), ("sysfs", "/sys", MS_NOSUID, nil), ("devtmpfs", "/dev", MS_NOSUID, nil),
        ("devpts", "/dev/pts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666"),
    ]
    for (type, target, flags, options) in early {
        if mkdir(target, 0o755) != 0 && errno != EEXIST {
            Console.error("mkdir \(target): \(errnoDetail(errno))")
        }
        // mount(2): source, target, filesystem type, flags, data.
        if mount(type, target, type, UInt(flags), options) != 0 && errno != EBUSY {
            Console.error("mount \(type) on \(target): \(errnoDetail(errno))")
        }
    }
}
