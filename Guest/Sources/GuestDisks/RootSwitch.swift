import Glibc
import POSIX

/// Booting on a root image (`momin run --image`): the host attaches the image read-only as
/// the disk whose serial is `momin.root=SERIAL`, and momin-init, still PID 1, puts a writable
/// layer over it and makes the merged tree `/`, as switch_root does (pivot_root cannot leave an
/// initramfs: the kernel refuses to pivot away from rootfs).
///
/// The layers (overlayfs, Documentation/filesystems/overlayfs.rst): the image, ext4 mounted
/// read-only with `noload`, is the lower layer; the upper layer and its work directory live on
/// a tmpfs of `momin.overlay=SIZE` (tmpfs(5) `size=`; default 25% of RAM), so everything the VM
/// writes is gone when it stops and the image never changes. /proc, /sys and /dev move into the
/// new root, and momin-init's own binary is bound at /usr/bin/hands there, so an agent's tools
/// keep their hands client; an image with Python also gets the `momin_hands` module.
public struct RootSwitch: Equatable, Sendable {
    public var serial: String
    /// tmpfs `size=` for the writable layer: bytes with an optional k, m or g, or a percentage.
    public var overlaySize: String

    public static let defaultOverlaySize = "25%"
    /// Where the layers are mounted in the initramfs before the move.
    public static let staging = "/.momin"
    /// The Python hands client in the initramfs (Scripts/guest-image puts it there), and where an
    /// image's Python finds it: Debian's directory for modules not from pip.
    public static let pythonModule = "/usr/lib/momin/python/momin_hands.py"
    public static let pythonPackages = "/usr/lib/python3/dist-packages"

    public init(serial: String, overlaySize: String = RootSwitch.defaultOverlaySize) {
        self.serial = serial
        self.overlaySize = overlaySize
    }

    /// The switch the command line asks for: nil without `momin.root`; an error line for a
    /// malformed value (the boot must not go on as if it had not been asked).
    public static func parse(commandLine words: [String]) -> Result<RootSwitch, RootSwitchError>? {
        var serial: String?
        var size = defaultOverlaySize
        for word in words {
            if word.hasPrefix("momin.root=") { serial = String(word.dropFirst("momin.root=".count)) }
            if word.hasPrefix("momin.overlay=") { size = String(word.dropFirst("momin.overlay=".count)) }
        }
        guard let serial else { return nil }
        guard DiskMount.isValidName(serial) else { return .failure(.badParameter("momin.root=\(serial): not a disk serial")) }
        guard isValidSize(size) else {
            return .failure(.badParameter("momin.overlay=\(size): expected a size such as 256m, 1g or 50%"))
        }
        return .success(RootSwitch(serial: serial, overlaySize: size))
    }

    /// Digits with an optional k, m, g or %: what tmpfs takes for `size=`, nothing that could
    /// add another mount option.
    static func isValidSize(_ text: String) -> Bool {
        var digits = Substring(text)
        if let last = digits.last, "kmgKMG%".contains(last) { digits = digits.dropLast() }
        return !digits.isEmpty && digits.count <= 12 && digits.allSatisfy { $0.isASCII && $0.isNumber } && Int(digits)! > 0
    }

    /// The mounts, in order, that build the new root under `staging` from `device` ("vda").
    public func steps(device: String, dev: String = "/dev") -> [MountStep] {
        let s = Self.staging
        return [
            .directory(s), .directory(s + "/image"), .directory(s + "/rw"), .directory(s + "/root"),
            .mount(source: dev + "/" + device, target: s + "/image", type: "ext4",
                   flags: UInt(MS_RDONLY | MS_NODEV), data: "noload"),
            .mount(source: "tmpfs", target: s + "/rw", type: "tmpfs", flags: UInt(MS_NOSUID | MS_NODEV),
                   data: "size=\(overlaySize),mode=0755"),
            .directory(s + "/rw/upper"), .directory(s + "/rw/work"),
            .mount(source: "overlay", target: s + "/root", type: "overlay", flags: 0,
                   data: "lowerdir=\(s)/image,upperdir=\(s)/rw/upper,workdir=\(s)/rw/work"),
            .directory(s + "/root/proc"), .move(from: "/proc", to: s + "/root/proc"),
            .directory(s + "/root/sys"), .move(from: "/sys", to: s + "/root/sys"),
            .directory(s + "/root/dev"), .move(from: "/dev", to: s + "/root/dev"),
            .directory(s + "/root/usr/bin"), .file(s + "/root/usr/bin/hands"),
            .bind(from: "/init", to: s + "/root/usr/bin/hands", readOnly: true),
            .bindIfPresent(from: Self.pythonModule, to: s + "/root" + Self.pythonPackages + "/momin_hands.py"),
            .enter(s + "/root"),
        ]
    }
}

public enum RootSwitchError: Error, Equatable, CustomStringConvertible {
    case badParameter(String)
    case noDevice(serial: String)
    case failed(step: String, errno: Int32)

    public var description: String {
        switch self {
        case .badParameter(let what): what
        case .noDevice(let serial): "no virtio disk has serial \(serial) (the root image)"
        case .failed(let step, let code): "\(step): \(describeErrno(code))"
        }
    }
}

/// One step of the switch, pure so that the order is tested without mounting.
public enum MountStep: Equatable, Sendable, CustomStringConvertible {
    case directory(String)
    /// An empty file to bind over.
    case file(String)
    case mount(source: String, target: String, type: String, flags: UInt, data: String)
    /// mount(2) MS_MOVE.
    case move(from: String, to: String)
    case bind(from: String, to: String, readOnly: Bool)
    /// A read-only bind of `from` over the file `to` (made when missing), only when `from` is a
    /// file, `to`'s directory a directory and `to` no link; otherwise nothing, not a failure.
    case bindIfPresent(from: String, to: String)
    /// chdir, MS_MOVE onto /, chroot(".") and chdir("/"): what switch_root does.
    case enter(String)

    public var description: String {
        switch self {
        case .directory(let path): "mkdir \(path)"
        case .file(let path): "create \(path)"
        case .mount(let source, let target, let type, _, let data): "mount \(type) \(source) on \(target) (\(data))"
        case .move(let from, let to): "move \(from) to \(to)"
        case .bind(let from, let to, _): "bind \(from) on \(to)"
        case .bindIfPresent(let from, let to): "bind \(from) on \(to) where both are there"
        case .enter(let root): "make \(root) the root"
        }
    }

    /// Carries the step out; the errno of the first call that failed.
    public func perform() -> Int32? {
        func check(_ rc: Int32) -> Int32? { rc == 0 ? nil : errno }
        switch self {
        case .directory(let path):
            return mkdir(path, 0o755) == 0 || errno == EEXIST ? nil : errno
        case .file(let path):
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o755)
            guard fd >= 0 else { return errno }
            close(fd)
            return nil
        case .mount(let source, let target, let type, let flags, let data):
            return check(Glibc.mount(source, target, type, flags, data))
        case .move(let from, let to):
            return check(Glibc.mount(from, to, nil, UInt(MS_MOVE), nil))
        case .bind(let from, let to, let readOnly):
            if let failed = check(Glibc.mount(from, to, nil, UInt(MS_BIND), nil)) { return failed }
            // A bind takes read-only only on a remount (mount(2), "Creating a bind mount").
            return readOnly ? check(Glibc.mount(nil, to, nil, UInt(MS_BIND | MS_REMOUNT | MS_RDONLY), nil)) : nil
        case .bindIfPresent(let from, let to):
            var info = stat()
            guard lstat(from, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
            let directory = String(to[..<(to.lastIndex(of: "/") ?? to.startIndex)])
            guard lstat(directory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return nil }
            // The image's own file of that name is covered; a link or anything else is left.
            guard lstat(to, &info) != 0 || info.st_mode & S_IFMT == S_IFREG else { return nil }
            if let failed = MountStep.file(to).perform() { return failed }
            return MountStep.bind(from: from, to: to, readOnly: true).perform()
        case .enter(let root):
            if let failed = check(chdir(root)) { return failed }
            if let failed = check(Glibc.mount(".", "/", nil, UInt(MS_MOVE), nil)) { return failed }
            if let failed = check(chroot(".")) { return failed }
            return check(chdir("/"))
        }
    }
}

extension RootSwitch {
    /// Finds the image's disk and carries out every step; the first failure, or nil once `/`
    /// is the merged tree.
    public func run(sysBlock: String = "/sys/block") -> RootSwitchError? {
        guard let device = BlockDevices.bySerial(sysBlock: sysBlock)[serial] else { return .noDevice(serial: serial) }
        for step in steps(device: device) {
            if let code = step.perform() { return .failed(step: step.description, errno: code) }
        }
        return nil
    }
}
