import Glibc
import Images
import POSIX

/// A named VM's scratch disk (`momin start NAME --scratch SIZE`, docs/disks.md, "Scratch"): a
/// sparse ext4 file under the data directory, attached read-write and mounted at /scratch by
/// momin-init, the one place in a VM that persists across `momin stop` and `momin start`.
/// `momin stop NAME --remove-scratch` deletes it.
public enum ScratchDisk {
    /// Where VM `name`'s scratch disk is kept.
    public static func path(for name: String, in environment: HostEnvironment) -> String {
        environment.dataDirectory + "/scratch/" + name + ".ext4"
    }

    /// The scratch disk to attach to VM `name`: the one it has (whose size `size`, when given,
    /// must match), else a new one of `size` bytes (`--scratch`); nil when it has none and
    /// none is asked for. `made` says whether it is new.
    public static func prepare(for name: String, size text: String?, environment: HostEnvironment)
        throws(HostError) -> (request: DiskRequest, made: Bool)?
    {
        try VMRegistry.validate(name)
        let path = path(for: name, in: environment)
        var size: UInt64?
        if let text {
            do { size = try ImageSize.parse(text, option: "--scratch") } catch { throw HostError(error) }
            guard (ScratchFilesystem.minimumBytes...ScratchFilesystem.maximumBytes).contains(size!) else {
                throw .badInput("--scratch \(text) is out of range: give 8M to 1T")
            }
        }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFREG else { throw .failed("scratch disk \(path) is not a regular file") }
            if let size, size != UInt64(info.st_size) {
                throw .badInput("--scratch \(text!): VM \(name) already has a \(ImageSize.describe(UInt64(info.st_size))) scratch disk "
                    + "(\(path)); start it without --scratch to keep it, or remove it with momin stop \(name) --remove-scratch")
            }
            return (.scratch(path), false)
        }
        guard errno == ENOENT else { throw .failed("scratch disk \(path): \(describeErrno())") }
        guard let size else { return nil }
        try VMRegistry.makeDirectories(environment.dataDirectory + "/scratch")  // mkdir -p, 0700: a VM's private data
        let variables = ["PATH": getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"]
        do { try ScratchFilesystem.make(at: path, bytes: size, environment: variables) } catch { throw HostError(error) }
        return (.scratch(path), true)
    }

    /// Deletes VM `name`'s scratch disk; false when it had none. Refused while the VM runs.
    public static func remove(for name: String, registry: VMRegistry, environment: HostEnvironment) throws(HostError) -> Bool {
        try VMRegistry.validate(name)
        switch registry.state(name) {
        case .running, .starting: throw .badInput("VM \(name) is running; its scratch disk is removed after it stops")
        case .absent, .stale: break
        }
        let path = path(for: name, in: environment)
        guard unlink(path) == 0 else {
            if errno == ENOENT { return false }
            throw .failed("cannot remove the scratch disk \(path): \(describeErrno())")
        }
        return true
    }
}

extension HostError {
    /// An image library error as the host's, of the same kind.
    init(_ error: ImageError) {
        self.init(error.kind == .badInput ? .badInput : .failed, error.message)
    }
}
