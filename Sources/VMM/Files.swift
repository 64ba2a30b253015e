import Glibc
import GuestMemory
import POSIX

/// A kernel or initrd file, opened once at preflight and copied straight into guest RAM at
/// boot, so the VMM never holds a second copy of either (they are tens of MiB).
public final class BootFile: @unchecked Sendable {
    public let path: String
    public let role: String
    public let size: Int
    private let fd: Int32

    /// Opens `path` read-only; it must be a regular file.
    init(_ path: String, role: String) throws(VMMError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .fileUnreadable(role: role, path: path, reason: String(cString: strerror(errno))) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .fileUnreadable(role: role, path: path, reason: reason)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .fileUnreadable(role: role, path: path, reason: "not a regular file")
        }
        self.path = path
        self.role = role
        self.size = Int(st.st_size)
        self.fd = fd
    }

    deinit { close(fd) }

    /// The first `count` bytes (fewer if the file is shorter).
    func prefix(_ count: Int) throws(VMMError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: min(count, size))
        let n = try bytes.withUnsafeMutableBytes { buffer in Result { () throws(VMMError) in try readFully(into: buffer, at: 0) } }.get()
        guard n == bytes.count else { throw shrank }
        return bytes
    }

    /// Copies `count` bytes from file offset `offset` into guest RAM at `address`.
    func copy(offset: Int, count: Int, into memory: GuestMemory, at address: UInt64) throws(VMMError) {
        let destination: UnsafeMutableRawPointer
        do { destination = try memory.hostAddress(address, length: UInt64(count)) } catch { throw .memory(error) }
        let n = try readFully(into: UnsafeMutableRawBufferPointer(start: destination, count: count), at: offset)
        guard n == count else { throw shrank }
    }

    private var shrank: VMMError { .fileUnreadable(role: role, path: path, reason: "file shrank while reading") }

    /// pread(2) until `buffer` is full or the file ends; the byte count.
    private func readFully(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(VMMError) -> Int {
        do { return try FileIO.preadFully(fd, into: buffer, at: offset) } catch {
            throw .fileUnreadable(role: role, path: path, reason: error.reason)
        }
    }
}
