import Glibc

/// What a path is on the host, as stat(2) sees it (following symlinks, as mount(2) does).
public enum PathKind: Equatable, Sendable {
    case missing, directory, regularFile, characterDevice, blockDevice, other
}

/// How validation looks at the file system: `HostPaths` for real, a dictionary in tests.
public protocol PathProbe {
    func kind(of path: String) -> PathKind
}

/// stat(2) on this host.
public struct HostPaths: PathProbe {
    public init() {}

    public func kind(of path: String) -> PathKind {
        var st = stat()
        guard stat(path, &st) == 0 else { return .missing }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .regularFile
        case S_IFCHR: return .characterDevice
        case S_IFBLK: return .blockDevice
        default: return .other
        }
    }
}

/// A plan the file system or its own mounts rule out, found before anything is changed.
public enum JailPlanError: Error, Equatable, CustomStringConvertible {
    case hostRoot
    case rootMissing(String)
    case rootNotDirectory(String)
    case sourceMissing(mount: String, source: String)
    case deviceMissing(String)
    case notADevice(String)
    case deviceOutsideDev(String)
    case sameDestination(path: String, first: String, second: String)
    case nestedDestination(inner: String, outer: String, outerPath: String)
    case reservedDestination(mount: String, path: String, owner: String)

    public var description: String {
        switch self {
        case .hostRoot: "--root / would jail the whole host"
        case .rootMissing(let r): "--root \(r) does not exist"
        case .rootNotDirectory(let r): "--root \(r) is not a directory"
        case .sourceMissing(let m, let s): "\(m): source \(s) does not exist"
        case .deviceMissing(let d): "--device \(d) does not exist"
        case .notADevice(let d): "--device \(d) is not a character or block device"
        case .deviceOutsideDev(let d): "--device \(d) must lie under /dev"
        case .sameDestination(let p, let a, let b): "\(a) and \(b) both mount onto \(p) in the jail"
        case .nestedDestination(let inner, let outer, let path):
            "\(inner) would mount inside \(path), which \(outer) mounts; nested mounts are not supported"
        case .reservedDestination(let m, let p, let owner): "\(m): \(p) is \(owner)"
        }
    }
}

extension JailPlan {
    /// Where each mount lands inside the jail, labelled as the user wrote it.
    var destinations: [(path: String, label: String)] {
        binds.map { ($0.destination, "--bind \($0.spec)") } + devices.map { ($0, "--device \($0)") }
    }

    /// Checks the plan against the host before anything changes: the root is an existing
    /// directory, every source and device exists, and no two mounts collide.
    public func validate(against paths: some PathProbe) throws(JailPlanError) {
        guard root != "/" else { throw .hostRoot }
        switch paths.kind(of: root) {
        case .missing: throw .rootMissing(root)
        case .directory: break
        default: throw .rootNotDirectory(root)
        }
        for device in devices {
            guard JailPath.isInside(device, "/dev") else { throw .deviceOutsideDev(device) }
            switch paths.kind(of: device) {
            case .missing: throw .deviceMissing(device)
            case .characterDevice, .blockDevice: break
            default: throw .notADevice(device)
            }
        }
        for bind in binds where paths.kind(of: bind.source) == .missing {
            throw .sourceMissing(mount: "--bind \(bind.spec)", source: bind.source)
        }
        let all = destinations
        for (path, label) in all {
            if path == "/" { throw .reservedDestination(mount: label, path: path, owner: "the jail's own root (a tmpfs)") }
            if path == "/proc" || JailPath.isInside(path, "/proc") {
                throw .reservedDestination(mount: label, path: path, owner: "the jail's own /proc")
            }
            if !devices.isEmpty && path == "/dev" {
                throw .reservedDestination(mount: label, path: path, owner: "the jail's own /dev (for --device)")
            }
        }
        for (i, a) in all.enumerated() {
            for b in all[(i + 1)...] {
                if a.path == b.path { throw .sameDestination(path: a.path, first: a.label, second: b.label) }
                if JailPath.isInside(a.path, b.path) { throw .nestedDestination(inner: a.label, outer: b.label, outerPath: b.path) }
                if JailPath.isInside(b.path, a.path) { throw .nestedDestination(inner: b.label, outer: a.label, outerPath: a.path) }
            }
        }
    }
}
