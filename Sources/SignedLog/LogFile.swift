import Foundation
import GRDB
import Glibc

/// Why a log file could not be opened or read, before the log type names itself
/// (`AuditError`, `BucketError` say whose file it is).
package enum LogStoreError: Error, Equatable {
    /// Not a SQLite database, or not of this log type and version.
    case notThisFormat(String)
    case cannotOpen(String)
    /// Another writer, in this or another process, holds the file.
    case busy
    /// SQLite failed.
    case database(String)

    /// SQLite's errors, classified; a `LogStoreError` is passed on.
    package init(_ error: any Error) {
        switch error {
        case let error as LogStoreError: self = error
        case let error as DatabaseError where error.resultCode == .SQLITE_NOTADB: self = .notThisFormat("not a SQLite database")
        case let error as DatabaseError: self = .database(error.message ?? error.description)
        default: self = .database("\(error)")
        }
    }
}

/// What makes a SQLite file a log of one type: its PRAGMA application_id and user_version, its
/// tables, and the SQL that creates them (tables and append-only triggers).
package struct LogSchema: Sendable {
    package let applicationID: Int32
    package let version: Int
    package let tables: [String]
    package let create: String
    /// Runs once on a new file, after `create`, in the same transaction (an audit log's identity).
    package let setUp: (@Sendable (Database) throws -> Void)?

    package init(applicationID: Int32, version: Int, tables: [String], create: String,
                 setUp: (@Sendable (Database) throws -> Void)? = nil) {
        self.applicationID = applicationID
        self.version = version
        self.tables = tables
        self.create = create
        self.setUp = setUp
    }

    /// Throws `notThisFormat` unless the open database is of this type and version;
    /// true if it is a new, empty database (no tables, no application id).
    package func check(_ db: Database) throws -> Bool {
        let application = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
        let present = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        if application == 0 && present.isEmpty { return true }
        guard application == applicationID else {
            throw LogStoreError.notThisFormat("its SQLite application id is \(application), not \(applicationID)")
        }
        let found = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        guard found == version else {
            throw LogStoreError.notThisFormat("format version \(found), this momin reads version \(version)")
        }
        for table in tables where !present.contains(table) { throw LogStoreError.notThisFormat("it has no \(table) table") }
        return false
    }

    /// The writer's connection (the caller holds the `WriterLock`) in WAL mode, with PRAGMA
    /// synchronous set to `synchronous` (SQLite's default, FULL, when nil; see
    /// `AuditLog.Durability`). In one transaction the file is checked, its tables are made if it
    /// is new, and `resume` reads what the writer goes on from.
    package func openWriter<State>(path: String, synchronous: String? = nil,
                                   resume: (Database) throws -> State) throws -> (DatabaseQueue, State) {
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(10)
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        do {
            if let synchronous { try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = \(synchronous)") } }
            let state = try queue.write { db in
                if try check(db) {
                    try db.execute(sql: create)
                    try setUp?(db)
                    try db.execute(sql: "PRAGMA application_id = \(applicationID)")
                    try db.execute(sql: "PRAGMA user_version = \(version)")
                }
                return try resume(db)
            }
            return (queue, state)
        } catch {
            try? queue.close()
            throw error
        }
    }

    /// A read-only connection to an existing log of this type (a verifier, a reader beside a writer).
    package func openReader(path: String) throws -> DatabaseQueue {
        var info = stat()
        guard stat(path, &info) == 0 else { throw LogStoreError.cannotOpen(String(cString: strerror(errno))) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw LogStoreError.cannotOpen("not a regular file") }
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        do {
            if try queue.read(check) { throw LogStoreError.notThisFormat("it has no tables") }
        } catch {
            try? queue.close()
            throw error
        }
        return queue
    }
}

/// flock(LOCK_EX) on a log file while its one writer has it open. Released only after SQLite
/// has closed its own descriptors: closing any descriptor of the file drops the process's
/// POSIX locks, SQLite's included.
package struct WriterLock: Sendable {
    private let descriptor: Int32

    /// Opens (creating) `path` and locks it, retrying every 2 ms for up to `wait` while another
    /// writer holds it; `.busy` after that.
    package init(path: String, waiting wait: Duration) throws(LogStoreError) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .cannotOpen(String(cString: strerror(errno))) }
        let deadline = ContinuousClock.now + wait
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            guard code == EWOULDBLOCK || code == EINTR, ContinuousClock.now < deadline else {
                close(fd)
                throw code == EWOULDBLOCK ? .busy : .cannotOpen(String(cString: strerror(code)))
            }
            usleep(2000)
        }
        descriptor = fd
    }

    package func release() { close(descriptor) }
}
