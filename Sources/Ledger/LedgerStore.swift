import Glibc
import POSIX

/// The ledger across processes (each `momin start` is its own): `ledger.json` in a runtime
/// directory, changed only under an exclusive flock(2) on `ledger.lock` beside it, and
/// replaced whole (temporary file, fsync, rename) so a reader never sees half of it.
///
/// Each load first reaps the grants whose VMM is gone, with their subtrees. A file that
/// cannot be read as a ledger is an error that names it; it is never silently reset.
public struct LedgerStore: Sendable {
    /// Must exist; the caller makes it (mode 0700).
    public let directory: String
    public let maxDepth: Int
    private let isAlive: @Sendable (Grant) -> Bool

    /// `isAlive` says whether a grant's process still runs; tests pass a fake.
    public init(directory: String, maxDepth: Int = ResourceLedger.defaultMaxDepth,
                isAlive: @escaping @Sendable (Grant) -> Bool = LedgerStore.processRuns) {
        self.directory = directory
        self.maxDepth = maxDepth
        self.isAlive = isAlive
    }

    public var path: String { Files.join(directory, "ledger.json") }
    public var lockPath: String { Files.join(directory, "ledger.lock") }

    /// kill(pid, 0): only ESRCH means gone (EPERM is another user's live process).
    public static func processExists(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno != ESRCH
    }

    /// The grant's process exists and, where its start time was kept, is the same process
    /// (a reused pid started later).
    public static func processRuns(_ grant: Grant) -> Bool {
        guard processExists(grant.pid) else { return false }
        guard let kept = grant.pidStart, let now = ProcessStat.startTime(of: grant.pid) else { return true }
        return kept == now
    }

    /// Under the lock: loads the ledger (an empty one on `pool` when there is no file), reaps
    /// dead grants, moves the grants onto `pool` if it changed, runs `body`, and writes the
    /// result if anything changed. When `body` throws, only the reaping is kept.
    public func update<T>(pool: HostPool, _ body: (inout ResourceLedger) throws(LedgerError) -> T)
        throws(LedgerStoreError) -> (value: T, reaped: [String])
    {
        try locked { () throws(LedgerStoreError) in
            let stored = try load()
            var ledger = stored ?? ResourceLedger(pool: pool, maxDepth: maxDepth)
            let reaped = ledger.reap(isAlive: isAlive)
            if ledger.pool != pool {
                do throws(LedgerError) { ledger = try ResourceLedger(pool: pool, maxDepth: maxDepth, grants: ledger.allGrants) } catch {
                    if ledger != stored { try save(ledger) }
                    throw .poolChanged(path: path, error)
                }
            }
            let before = ledger
            let value: T
            do throws(LedgerError) { value = try body(&ledger) } catch {
                if before != stored { try save(before) }
                throw .refused(error)
            }
            if ledger != stored { try save(ledger) }
            return (value, reaped)
        }
    }

    /// What `momin ps` shows: the ledger after reaping (written back if anything was reaped);
    /// nil when no ledger was ever written.
    public func read() throws(LedgerStoreError) -> (ledger: ResourceLedger, reaped: [String])? {
        try locked { () throws(LedgerStoreError) in
            guard var ledger = try load() else { return nil }
            let reaped = ledger.reap(isAlive: isAlive)
            if !reaped.isEmpty { try save(ledger) }
            return (ledger, reaped)
        }
    }

    // MARK: File

    /// The largest ledger file read.
    static let maximumFileSize = 16 << 20

    private func locked<T>(_ body: () throws(LedgerStoreError) -> T) throws(LedgerStoreError) -> T {
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .cannotOpen(path: lockPath, why: SystemError("open", subject: lockPath).reason) }
        // Closing the descriptor drops the lock.
        defer { close(fd) }
        if retryingEINTR({ flock(fd, LOCK_EX) }) != 0 {
            throw .cannotOpen(path: lockPath, why: "flock: " + SystemError("flock", subject: lockPath).reason)
        }
        return try body()
    }

    private func load() throws(LedgerStoreError) -> ResourceLedger? {
        let bytes: [UInt8]
        do { bytes = try Files.read(path, limit: Self.maximumFileSize) } catch {
            if error.errno == ENOENT { return nil }
            throw .cannotOpen(path: path, why: error.errno == EFBIG ? "larger than \(Self.maximumFileSize) bytes" : error.reason)
        }
        // The file is only ever replaced whole, so an empty one was not written by a store.
        guard !bytes.isEmpty else { throw .corrupt(path: path, why: "the file is empty") }
        do { return try ResourceLedger.decode(bytes, maxDepth: maxDepth) } catch { throw .corrupt(path: path, why: error.description) }
    }

    private func save(_ ledger: ResourceLedger) throws(LedgerStoreError) {
        let temporary = path + ".tmp.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .cannotWrite(path: path, why: SystemError("open", subject: temporary).description) }
        var open = true
        do throws(SystemError) {
            do { try FileIO.writeAll(fd, Array(ledger.encoded().utf8)) } catch { throw SystemError(error.call, errno: error.errno, subject: temporary) }
            guard fsync(fd) == 0 else { throw SystemError("fsync", subject: temporary) }
            open = false
            guard close(fd) == 0 else { throw SystemError("close", subject: temporary) }
            guard rename(temporary, path) == 0 else { throw SystemError("rename", subject: temporary) }
        } catch {
            if open { close(fd) }
            unlink(temporary)
            throw .cannotWrite(path: path, why: error.description)
        }
        FileIO.syncDirectory(of: path)
    }
}

/// Why the store could not be used, or why the ledger refused; each names the file.
public enum LedgerStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotOpen(path: String, why: String)
    case cannotWrite(path: String, why: String)
    /// The file is not a ledger this build reads; it is left as it is.
    case corrupt(path: String, why: String)
    /// The pool given no longer holds what a running VM was granted.
    case poolChanged(path: String, LedgerError)
    /// The ledger refused the change (what did not fit, and what is free).
    case refused(LedgerError)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let why): "cannot open ledger \(path): \(why)"
        case .cannotWrite(let path, let why): "cannot write ledger \(path): \(why)"
        case .corrupt(let path, let why):
            "ledger \(path) is corrupt: \(why) (it was left as it is; move it away once no VM runs)"
        case .poolChanged(let path, let error):
            "ledger \(path): the host pool changed and a running VM's grant is outside it: \(error)"
        case .refused(let error): error.description
        }
    }
}
