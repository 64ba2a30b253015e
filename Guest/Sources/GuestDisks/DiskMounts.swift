import Glibc
import POSIX

/// A disk the host named, and how the guest is to mount it: `momin.disk=NAME:ro` puts it at
/// /evidence/NAME, read-only as a forensic examiner would (`ro,noload,nodev,nosuid,noexec`:
/// noload, so a dirty ext4 journal is never replayed onto evidence); `momin.disk=NAME:rw` at
/// /disks/NAME (`nodev,nosuid`); `momin.disk=NAME:scratch`, the VM's scratch disk (at most one),
/// read-write at /scratch (`nodev,nosuid`). The host sets the disk's virtio-blk serial (GET_ID, virtio 1.2
/// §5.2.6) to NAME; there is no udev in the guest, so the serial is read from sysfs.
public struct DiskMount: Equatable, Sendable {
    public var name: String
    public var writable: Bool
    public var isScratch = false

    public init(name: String, writable: Bool, isScratch: Bool = false) {
        self.name = name
        self.writable = writable || isScratch
        self.isScratch = isScratch
    }

    public var mountPoint: String { isScratch ? "/scratch" : (writable ? "/disks/" : "/evidence/") + name }

    /// mount(2) flags and data for ext4.
    public var flags: UInt { writable ? UInt(MS_NODEV | MS_NOSUID) : UInt(MS_RDONLY | MS_NODEV | MS_NOSUID | MS_NOEXEC) }
    public var data: String { writable ? "" : "noload" }

    /// A serial is at most 20 bytes (VIRTIO_BLK_ID_BYTES); a name is 1 to 20 of A-Z a-z 0-9
    /// . _ -, starting with a letter or digit.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...20).contains(bytes.count), isAlphanumeric(bytes[0]) else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    static func isAlphanumeric(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
    }

    /// The disks the kernel command line asks for, and a line for each word that is malformed
    /// (skipped; the boot goes on). A name asked for twice is taken once, the first time.
    public static func parse(commandLine words: [String]) -> (mounts: [DiskMount], problems: [String]) {
        var mounts: [DiskMount] = []
        var problems: [String] = []
        for word in words where word.hasPrefix("momin.disk=") {
            let value = word.dropFirst("momin.disk=".count)
            let parts = value.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, isValidName(String(parts[0])), ["ro", "rw", "scratch"].contains(parts[1]) else {
                problems.append("\(word): expected momin.disk=NAME:ro, NAME:rw or NAME:scratch (NAME: 1 to 20 of A-Z a-z 0-9 . _ -)")
                continue
            }
            let mount = DiskMount(name: String(parts[0]), writable: parts[1] == "rw", isScratch: parts[1] == "scratch")
            if mounts.contains(where: { $0.name == mount.name }) {
                problems.append("\(word): disk \(mount.name) is named twice; the first is kept")
                continue
            }
            if mount.isScratch, mounts.contains(where: \.isScratch) {
                problems.append("\(word): a second scratch disk; the first is kept")
                continue
            }
            mounts.append(mount)
        }
        return (mounts, problems)
    }
}

/// The virtio block devices the kernel found, by serial: `/sys/block/vd*/serial` (a file the
/// virtio_blk driver adds, holding the GET_ID string up to its first NUL).
public enum BlockDevices {
    /// Serial → device name ("vda"), from `sysBlock` (/sys/block). Devices without a serial
    /// are left out; of two with one serial, the first in name order is kept.
    public static func bySerial(sysBlock: String = "/sys/block") -> [String: String] {
        var found: [String: String] = [:]
        for device in ((try? FileIO.listDirectory(sysBlock)) ?? []).filter({ $0.hasPrefix("vd") }) {
            guard let text = try? FileIO.readFile(sysBlock + "/" + device + "/serial", limit: 4096) else { continue }
            let serial = String(decoding: text.prefix { $0 != 0 && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
            if !serial.isEmpty && found[serial] == nil { found[serial] = device }
        }
        return found
    }
}

/// What momin-init does with the disks at boot: a `/dev/disk/by-id/virtio-SERIAL` link for each
/// disk with a serial (udev's name, which tools expect), then each asked-for mount. Returns one
/// line per problem; nothing here stops the boot.
public enum DiskSetup {
    public static func run(commandLine: [String], sysBlock: String = "/sys/block", dev: String = "/dev",
                           root: String = "", mount doMount: (String, String, DiskMount) -> Int32 = DiskSetup.mountExt4)
        -> (mounted: [String], problems: [String])
    {
        let (asked, parseProblems) = DiskMount.parse(commandLine: commandLine)
        var problems = parseProblems
        let devices = BlockDevices.bySerial(sysBlock: sysBlock)
        if !devices.isEmpty {
            makeDirectories(dev + "/disk/by-id", &problems)
            for (serial, device) in devices.sorted(by: { $0.key < $1.key }) where DiskMount.isValidName(serial) {
                let link = dev + "/disk/by-id/virtio-" + serial
                if symlink("../../" + device, link) != 0 && errno != EEXIST {
                    problems.append("link \(link): \(describeErrno(errno))")
                }
            }
        }
        var mounted: [String] = []
        for disk in asked {
            guard let device = devices[disk.name] else {
                problems.append("disk \(disk.name): no virtio disk has that serial")
                continue
            }
            let target = root + disk.mountPoint
            makeDirectories(target, &problems)
            if doMount(dev + "/" + device, target, disk) != 0 {
                problems.append("mount \(dev)/\(device) (\(disk.name)) on \(disk.mountPoint): \(describeErrno(errno))")
                continue
            }
            mounted.append("\(disk.name) \(device) \(disk.mountPoint) \(disk.writable ? "rw" : "ro")")
        }
        return (mounted, problems)
    }

    /// mount(2) of an ext4 file system with the disk's flags.
    public static func mountExt4(_ source: String, _ target: String, _ disk: DiskMount) -> Int32 {
        mount(source, target, "ext4", disk.flags, disk.data)
    }

    /// mkdir -p, with the first failure noted.
    static func makeDirectories(_ path: String, _ problems: inout [String]) {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                problems.append("mkdir \(prefix): \(describeErrno(errno))")
                return
            }
        }
    }
}
