import Glibc
import POSIX

/// A private directory for one VM's sockets and log (mode 0700), in the host's runtime
/// directory; removed when the VM is done with.
public struct RuntimeDirectory: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// A fresh `vm.XXXXXX` directory in the host's runtime directory (`momin boot`'s VMs).
    public static func create(in environment: HostEnvironment) throws(HostError) -> RuntimeDirectory {
        let base = try environment.makeRuntimeDirectory()
        var template = Array("\(base)/vm.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw .vmFailed("cannot create a directory in \(base): \(describeErrno())")
        }
        return RuntimeDirectory(path: String(cString: made))
    }

    nonisolated(unsafe) private static var atExit: [String] = []

    /// Removes the directory when the process exits, however it exits short of a signal.
    public func removeAtExit() {
        if Self.atExit.isEmpty {
            atexit { for path in RuntimeDirectory.atExit { RuntimeDirectory(path: path).remove() } }
        }
        Self.atExit.append(path)
    }

    /// Removes the directory and what is in it (sockets, the log, the socket directory).
    public func remove() {
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
                guard name != "." && name != ".." else { continue }
                if entry.pointee.d_type == UInt8(DT_DIR) { RuntimeDirectory(path: path + "/" + name).remove() } else { unlink(path + "/" + name) }
            }
            closedir(dir)
        }
        rmdir(path)
    }
}
