import Devices
import Glibc
import MachineConfig
import POSIX

/// The machine's disks, opened at preflight like the kernel (docs/jailer.md, "How files reach
/// momin-vmm"): read-only ones O_RDONLY, writable ones O_RDWR, all close-on-exec, before any
/// seccomp filter is on. The device thread then only reads and writes these descriptors.
enum DiskFiles {
    /// Opens and checks every disk: a regular file or block device whose size is a whole,
    /// non-zero number of 512-byte sectors, and no file twice.
    static func open(_ disks: [DiskConfiguration]) throws(VMMError) -> [DiskFile] {
        var opened: [DiskFile] = []
        var identities: [(device: UInt64, inode: UInt64, path: String)] = []
        for disk in disks {
            let (file, device, inode) = try open(disk)
            if let other = identities.first(where: { $0.device == device && $0.inode == inode }) {
                throw .invalidDisk(path: disk.path, reason: "the same file as disk \(other.path)")
            }
            identities.append((device, inode, disk.path))
            opened.append(file)
        }
        return opened
    }

    private static func open(_ disk: DiskConfiguration) throws(VMMError) -> (DiskFile, UInt64, UInt64) {
        // --disk checked this; a configuration made in code is held to it too.
        if let serial = disk.serial, serial.utf8.count > DiskConfiguration.maximumSerialBytes {
            throw .invalidDisk(path: disk.path, reason: "serial '\(serial)' is longer than \(DiskConfiguration.maximumSerialBytes) bytes")
        }
        let mode = disk.readOnly ? "read-only" : "read-write"
        let fd: Int32
        if let inherited = disk.descriptor {
            // Opened by the launcher in the disk's mode: a read-only disk must not come on a
            // descriptor that could write, nor a writable one on one that cannot.
            let flags = fcntl(inherited, F_GETFL)
            guard flags >= 0 else { throw .invalidDisk(path: disk.path, reason: "descriptor \(inherited) is not open: \(describeErrno())") }
            let access = flags & O_ACCMODE
            guard disk.readOnly ? access == O_RDONLY : access == O_RDWR else {
                throw .invalidDisk(path: disk.path, reason: "descriptor \(inherited) is not open \(disk.readOnly ? "read-only" : "read-write")")
            }
            _ = fcntl(inherited, F_SETFD, FD_CLOEXEC)
            fd = inherited
        } else {
            fd = retryingEINTR { Glibc.open(disk.path, (disk.readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC) }
            guard fd >= 0 else { throw .invalidDisk(path: disk.path, reason: "cannot open it \(mode): \(describeErrno())") }
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = describeErrno()
            close(fd)
            throw .invalidDisk(path: disk.path, reason: "cannot stat it: \(reason)")
        }
        let kind = st.st_mode & S_IFMT
        guard kind == S_IFREG || kind == S_IFBLK else {
            close(fd)
            throw .invalidDisk(path: disk.path, reason: kind == S_IFDIR ? "it is a directory" : "not a regular file or block device")
        }
        // A block device's st_size is 0; its end is where lseek says.
        let end = kind == S_IFREG ? Int64(st.st_size) : Int64(lseek(fd, 0, SEEK_END))
        guard end >= 0 else {
            let reason = describeErrno()
            close(fd)
            throw .invalidDisk(path: disk.path, reason: "cannot find its size: \(reason)")
        }
        let sector = Int64(BlockLimits.sectorSize)
        guard end > 0, end % sector == 0 else {
            close(fd)
            throw .invalidDisk(path: disk.path, reason: end <= 0 ? "it is empty" : "its size, \(end) bytes, is not a multiple of \(sector)")
        }
        return (DiskFile(adopting: fd, size: UInt64(end), writable: !disk.readOnly), UInt64(st.st_dev), UInt64(st.st_ino))
    }
}
