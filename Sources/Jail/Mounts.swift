import CLinux
import Glibc

/// The jail's file system, built in the child's own mount namespace (mount_namespaces(7)):
/// a small tmpfs on the root directory, /dev with only the requested nodes, each bind, a /proc
/// of the new PID namespace, then pivot_root(2) into it and the host's tree detached. The host
/// never sees any of it: propagation is made private before the first mount.
enum Mounts {
    /// MS_REC|MS_PRIVATE on /: no mount made here propagates back to the host, and none from
    /// the host arrives later.
    static func makePrivate() throws(JailFailure) {
        try system("make mounts private (MS_REC|MS_PRIVATE on /)", {
            mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil)
        })
    }

    /// A fresh tmpfs on the jail's root, so it is a mount point (pivot_root needs one) that holds
    /// only what the steps below create; nosuid, nodev.
    static func mountRoot(_ root: String) throws(JailFailure) {
        try system("mount tmpfs on \(root)", {
            mount("tmpfs", root, "tmpfs", UInt(MS_NOSUID | MS_NODEV), "mode=0755,size=1m,nr_inodes=4096")
        })
    }

    /// /dev as its own small tmpfs (noexec, nosuid; device nodes work there), only when
    /// `--device` asks for nodes.
    static func mountDev(_ root: String) throws(JailFailure) {
        let dev = JailPath.join(root, "/dev")
        try makeDirectories(dev)
        try system("mount tmpfs on \(dev)", {
            mount("tmpfs", dev, "tmpfs", UInt(MS_NOSUID | MS_NOEXEC), "mode=0755,size=64k,nr_inodes=256")
        })
    }

    /// mknod(2) with the host node's type and major:minor, owned by the jail's uid:gid, mode 0660.
    static func createDevice(_ path: String, root: String, uid: UInt32, gid: UInt32) throws(JailFailure) {
        var st = stat()
        try system("stat device \(path)", { stat(path, &st) })
        let type = st.st_mode & S_IFMT
        guard type == S_IFCHR || type == S_IFBLK else {
            throw JailFailure(step: "device \(path)", detail: "not a character or block device")
        }
        let node = JailPath.join(root, path)
        try makeDirectories(JailPath.parent(node))
        try system("create device node \(node)", { mknod(node, type | 0o600, st.st_rdev) })
        try system("chown device node \(node) to \(uid):\(gid)", { chown(node, uid, gid) })
        try system("chmod device node \(node) to 0660", { chmod(node, 0o660) })
    }

    /// A non-recursive bind of `bind.source` onto its destination under `root`, then remounted
    /// nosuid, nodev, read-only unless rw, keeping the source's noexec (mount(2), MS_BIND).
    static func bind(_ bind: Bind, root: String) throws(JailFailure) {
        var st = stat()
        try system("bind \(bind.source): stat", { stat(bind.source, &st) })
        let target = JailPath.join(root, bind.destination)
        if st.st_mode & S_IFMT == S_IFDIR {
            try makeDirectories(target)
        } else {
            try makeDirectories(JailPath.parent(target))
            let fd = try system("create mount point \(target)", { open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0o444) })
            close(fd)
        }
        try system("bind \(bind.source) onto \(target)", { mount(bind.source, target, nil, UInt(MS_BIND), nil) })
        var fs = statvfs()
        try system("statvfs \(target)", { statvfs(target, &fs) })
        var flags = UInt(MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)
        if !bind.writable { flags |= UInt(MS_RDONLY) }
        if fs.f_flag & CLINUX_ST_NOEXEC != 0 { flags |= UInt(MS_NOEXEC) }
        try system("remount \(target) \(bind.writable ? "read-write" : "read-only"), nosuid, nodev", {
            mount(nil, target, nil, flags, nil)
        })
    }

    /// procfs for the jail's PID namespace (it shows only the jail's processes), with
    /// subset=pid (Linux 5.8): no /proc/sys, /proc/kcore or other system-wide files, only the
    /// per-process directories and self/thread-self. nosuid, nodev, noexec.
    static func mountProc(_ root: String) throws(JailFailure) {
        let proc = JailPath.join(root, "/proc")
        try makeDirectories(proc)
        try system("mount proc on \(proc)", {
            mount("proc", proc, "proc", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), "subset=pid")
        })
    }

    /// pivot_root(2) with new_root and put_old both ".", the form the man page gives for
    /// when no directory for the old root is wanted; the old root is then stacked on the new
    /// one and umount2(".", MNT_DETACH) takes the whole host tree away. Unlike chroot(2), no
    /// path to the host remains: not through "..", not through a later chroot.
    static func pivot(into root: String) throws(JailFailure) {
        try system("chdir into \(root)", { chdir(root) })
        try system("pivot_root into \(root)", { clinux_pivot_root(".", ".") })
        try system("detach the old root (umount2 MNT_DETACH)", { umount2(".", Int32(MNT_DETACH)) })
        try system("chdir / in the jail", { chdir("/") })
    }

    /// Once built, the jail's / (and /dev) become read-only: the program can add nothing there.
    static func seal(hasDev: Bool) throws(JailFailure) {
        try system("remount the jail's / read-only", {
            mount(nil, "/", nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV), nil)
        })
        if hasDev {
            try system("remount the jail's /dev read-only", {
                mount(nil, "/dev", nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC), nil)
            })
        }
    }

    /// mkdir -p, mode 0755, for directories inside the jail's own tmpfs (never inside a bind:
    /// validation refuses nested mounts).
    static func makeDirectories(_ path: String) throws(JailFailure) {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) == 0 || errno == EEXIST { continue }
            throw JailFailure(step: "create directory \(current)", errno: errno)
        }
    }
}
