import Glibc
import POSIX

/// An empty ext4 file system in a new sparse file: a VM's scratch disk (docs/disks.md,
/// "Scratch"). The file is made here and never read back by the host: what the guest writes
/// into it later is the guest's business.
public enum ScratchFilesystem {
    /// The smallest and largest scratch disk: mke2fs needs a few MiB for its journal; the file
    /// is sparse, so the largest costs nothing until the guest writes.
    public static let minimumBytes: UInt64 = 8 << 20
    public static let maximumBytes: UInt64 = 1 << 40

    /// Creates `path` (it must not exist), `bytes` long, and formats it. On failure the file is
    /// removed.
    public static func make(at path: String, bytes: UInt64, environment: [String: String]) throws(ImageError) {
        guard (minimumBytes...maximumBytes).contains(bytes) else {
            throw .badInput("a scratch disk of \(bytes) bytes is out of range: 8 MiB to 1 TiB")
        }
        guard let mke2fs = Program.locate("mke2fs", searchPath: environment["PATH"]) else {
            throw .failed("mke2fs is not installed: install Debian's e2fsprogs package (apt-get install e2fsprogs)")
        }
        let fd = retryingEINTR { open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600) }
        guard fd >= 0 else { throw .failed("cannot create \(path): \(describeErrno())") }
        let sized = ftruncate(fd, off_t(bytes)) == 0
        let reason = describeErrno()
        close(fd)
        guard sized else {
            unlink(path)
            throw .failed("cannot make \(path) \(bytes) bytes: \(reason)")
        }
        // No reserved blocks (the guest's root owns it all); the inode tables are left for the
        // guest kernel to zero lazily, so the host writes only the metadata.
        let argv = [mke2fs, "-q", "-F", "-t", "ext4", "-m", "0", "-L", "scratch",
                    "-E", "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1,nodiscard", path]
        let result: ProgramResult
        do { result = try Program.run(argv, environment: DebianBuildPlan.environment(parent: environment)) } catch {
            unlink(path)
            throw error
        }
        guard result.succeeded else {
            unlink(path)
            throw .failed("\(mke2fs) \(result.statusText) making the scratch disk \(path): \(result.lastLines.last(where: { !$0.isEmpty }) ?? "no output")")
        }
    }
}
