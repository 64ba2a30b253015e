import Glibc
import POSIX

/// An unnamed file (O_TMPFILE) that holds bytes on their way into a guest: a large upload never
/// sits in memory, and nothing is left behind whatever happens.
enum TemporaryFile {
    /// Where it lives: $TMPDIR, else /var/tmp (on disk, where Debian has it), else /tmp.
    static let directory: String = {
        if let dir = getenv("TMPDIR").map({ String(cString: $0) }), dir.hasPrefix("/") { return dir }
        return access("/var/tmp", W_OK) == 0 ? "/var/tmp" : "/tmp"
    }()
    /// O_TMPFILE, `__O_TMPFILE | O_DIRECTORY` (open(2); a macro Swift does not import).
    static let openFlag: Int32 = 0o20_000_000 | O_DIRECTORY

    /// A new one, open for reading and writing; the caller closes it.
    static func open() throws(Problem) -> Int32 {
        let fd = Glibc.open(directory, openFlag | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw Problem(status: 500, title: "internal error", detail: "cannot hold the file's bytes in \(directory): \(describeErrno())")
        }
        return fd
    }

    /// Back to its first byte, to be read from there.
    static func rewind(_ fd: Int32) throws(Problem) {
        guard lseek(fd, 0, SEEK_SET) == 0 else { throw Problem(status: 500, title: "internal error", detail: "lseek: \(describeErrno())") }
    }
}
