import Glibc
import POSIX

/// A second file that gets every head a log signs, as `PublishedHead`'s JSON line, appended
/// (O_APPEND) and fsynced after the head's transaction has committed durably: a copy of the
/// log's signed states kept apart from it, which `momin audit verify --head FILE` checks the
/// log against (its last line). docs/audit.md, "Witness files".
///
/// A regular file (made 0644 if missing), or a character device (a terminal, /dev/stderr),
/// which is written but not fsynced. A line that cannot be written is an error, never skipped.
/// Used under its log's lock only.
final class Witness: @unchecked Sendable {
    let path: String
    private var descriptor: Int32
    private let syncs: Bool

    init(path: String, log: String) throws(AuditError) {
        func refuse(_ problem: String) -> AuditError { .witness(path: log, witness: path, problem: problem) }
        // O_NONBLOCK: a FIFO must not stall the open (it is refused below); cleared after.
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0o644)
        guard fd >= 0 else { throw refuse("cannot open: \(describeErrno())") }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let why = describeErrno()
            Glibc.close(fd)
            throw refuse("cannot stat: \(why)")
        }
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG || type == S_IFCHR else {
            Glibc.close(fd)
            throw refuse("not a regular file or a character device")
        }
        guard fcntl(fd, F_SETFL, O_WRONLY | O_APPEND) == 0 else {
            let why = describeErrno()
            Glibc.close(fd)
            throw refuse("cannot clear O_NONBLOCK: \(why)")
        }
        self.path = path
        descriptor = fd
        syncs = type == S_IFREG
    }

    deinit { close() }

    func close() {
        guard descriptor >= 0 else { return }
        Glibc.close(descriptor)
        descriptor = -1
    }

    /// Appends `head`'s line and waits for it to reach the disk.
    func append(_ head: PublishedHead, log: String) throws(AuditError) {
        do {
            guard descriptor >= 0 else { throw SystemError("write", errno: EBADF) }
            try FileIO.writeAll(descriptor, Array((head.json + "\n").utf8))
            if syncs, fsync(descriptor) != 0 { throw SystemError("fsync") }
        } catch {
            throw .witness(path: log, witness: path,
                           problem: "head \(head.head.sequence) (tree size \(head.head.treeSize)) is signed in the log but could not be witnessed: \(error)")
        }
    }
}
