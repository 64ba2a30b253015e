import Foundation
import GRDB
import Glibc
import Merkle
import Synchronization

/// The writer of an audit log: a SQLite database in WAL mode whose rows are the leaves of an
/// RFC 6962 Merkle tree, with a signed tree head every `signEvery` entries and on close.
///
/// Appends are O(log n): the tree's right edge (`MerkleFrontier`) is kept in memory, so the root
/// is never recomputed from the leaves. Each append is one SQLite transaction, committed before
/// `append` returns. There is no API that changes or removes a row, and the schema's triggers
/// refuse it too. One writer at a time: a second `AuditLog` on the same file gets `.busy`, or
/// waits up to `Options.lockWait` for the first to close.
public final class AuditLog: Sendable {
    /// What a committed entry survives.
    ///
    /// In WAL mode a commit appends the transaction's pages to the -wal file with write(2)
    /// before it returns; `synchronous` decides whether it also waits for fsync(2).
    /// - `processCrash` (synchronous=NORMAL): the WAL is fsynced only at checkpoints. A committed
    ///   entry is in the kernel's page cache, so it survives kill -9 or a crash of the writer
    ///   (SQLite replays the WAL on the next open), but the last commits before a power loss or
    ///   kernel crash may be lost. The log stays consistent either way: WAL frames carry
    ///   cumulative checksums, so recovery keeps a prefix of the commits, never a torn one.
    /// - `powerLoss` (synchronous=FULL): each commit waits for fsync of the WAL, so a committed
    ///   entry also survives power loss, at the cost of one fsync per append.
    public enum Durability: Sendable {
        case processCrash
        case powerLoss
    }

    public struct Options: Sendable {
        /// The signing key; default `<db>.key` (made on first use).
        public var keyPath: String?
        /// A head is signed, in the same transaction, when this many entries are unsigned.
        public var signEvery: UInt64
        public var durability: Durability
        /// Nanoseconds since the Unix epoch, for entries and heads.
        public var clock: @Sendable () -> UInt64
        /// How long to wait for another writer to close the log before `.busy`; zero: not at all.
        /// Writers that share a log (the `momin exec` calls of one long-lived VM) each open it
        /// for one batch of appends and wait their turn here.
        public var lockWait: Duration

        public init(keyPath: String? = nil, signEvery: UInt64 = 1024, durability: Durability = .processCrash,
                    clock: @escaping @Sendable () -> UInt64 = AuditLog.wallClock, lockWait: Duration = .zero) {
            self.keyPath = keyPath
            self.signEvery = max(signEvery, 1)
            self.durability = durability
            self.clock = clock
            self.lockWait = lockWait
        }
    }

    public let path: String
    public let key: AuditKey
    let options: Options
    private let database: DatabaseQueue
    /// Holds flock(LOCK_EX) on the database file while the log is open. Closed only after
    /// SQLite has closed its own descriptors: closing any descriptor of the file drops the
    /// process's POSIX locks, SQLite's included.
    private let lockDescriptor: Int32
    private let state: Mutex<State>

    struct State {
        var frontier: MerkleFrontier
        var lastHead: SignedTreeHead?
        var closed = false
        var signedSize: UInt64 { lastHead?.treeSize ?? 0 }
        var nextSequence: UInt64 { lastHead.map { $0.sequence + 1 } ?? 0 }
    }

    /// Opens the log at `path`, creating it (and the key) if needed. An existing log is resumed:
    /// the frontier comes from its last signed head (checked against the head's root and
    /// signature) and the entries after it (each checked as `verify` does).
    public convenience init(path: String, options: Options = Options()) throws(AuditError) {
        let lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lock >= 0 else { throw .cannotOpen(path: path, why: errnoText()) }
        if let code = Self.lockExclusively(lock, waiting: options.lockWait) {
            Glibc.close(lock)
            throw code == EWOULDBLOCK ? .busy(path: path) : .cannotOpen(path: path, why: String(cString: strerror(code)))
        }
        var database: DatabaseQueue?
        do {
            let key = try AuditKey.loadOrCreate(path: options.keyPath ?? path + ".key")
            var configuration = Configuration()
            configuration.journalMode = .wal
            configuration.busyMode = .timeout(10)
            let opened = try catchingSQL(path) { try DatabaseQueue(path: path, configuration: configuration) }
            database = opened
            let state = try catchingSQL(path) {
                try opened.writeWithoutTransaction { db in
                    try db.execute(sql: "PRAGMA synchronous = \(options.durability == .powerLoss ? "FULL" : "NORMAL")")
                }
                return try opened.write { db in
                    if try Schema.check(db, path: path) {
                        try db.execute(sql: Schema.create)
                        try db.execute(sql: "PRAGMA application_id = \(Schema.applicationID)")
                        try db.execute(sql: "PRAGMA user_version = \(Schema.version)")
                    }
                    return try Self.resume(db, path: path, key: key)
                }
            }
            self.init(path: path, key: key, options: options, database: opened, lock: lock, state: state)
        } catch {
            try? database?.close()
            Glibc.close(lock)
            throw error
        }
    }

    /// flock(LOCK_EX), retried every 2 ms for up to `wait`; nil when held, else the errno.
    private static func lockExclusively(_ fd: Int32, waiting wait: Duration) -> Int32? {
        let deadline = ContinuousClock.now + wait
        while true {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return nil }
            let code = errno
            guard code == EWOULDBLOCK || code == EINTR, ContinuousClock.now < deadline else { return code }
            usleep(2000)
        }
    }

    private init(path: String, key: AuditKey, options: Options, database: DatabaseQueue, lock: Int32, state: State) {
        self.path = path
        self.key = key
        self.options = options
        self.database = database
        self.lockDescriptor = lock
        self.state = Mutex(state)
    }

    deinit {
        try? close()
    }

    /// Rebuilds the frontier of an existing log without reading every leaf: the last head's
    /// stored frontier, then the unsigned tail.
    private static func resume(_ db: Database, path: String, key: AuditKey) throws -> State {
        let size = try UInt64(Int64.fetchOne(db, sql: #"SELECT coalesce(max("index"), -1) + 1 FROM entries"#) ?? 0)
        let rows = try UInt64(Int64.fetchOne(db, sql: "SELECT count(*) FROM entries") ?? 0)
        if rows != size {
            let gap = try Int64.fetchOne(db, sql: #"""
                SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM entries WHERE "index" = 0) THEN 0 ELSE
                  (SELECT min(e."index") + 1 FROM entries e
                   WHERE NOT EXISTS (SELECT 1 FROM entries f WHERE f."index" = e."index" + 1)) END
                """#) ?? 0
            throw AuditError.damaged(path: path, finding: AuditFinding(
                place: .entry(UInt64(gap)), kind: .deleted, detail: "missing: \(size - rows) of the indices below \(size) have no row"))
        }
        var frontier = MerkleFrontier()
        var lastHead: SignedTreeHead?
        if let row = try Row.fetchOne(db, sql: "SELECT seq, tree_size, root_hash, time, signature, frontier FROM heads ORDER BY seq DESC LIMIT 1") {
            let stored = StoredHead(row)
            guard let head = stored.head else {
                throw AuditError.damaged(path: path, finding: AuditFinding(
                    place: stored.place, kind: .forgedHead, detail: stored.problem ?? "malformed"))
            }
            guard head.isValid(for: key.publicKey) else { throw AuditError.keyMismatch(path: path, keyPath: key.path) }
            guard head.treeSize <= size else {
                throw AuditError.damaged(path: path, finding: AuditFinding(
                    place: .entry(size), kind: .deleted, detail: "missing: head \(head.sequence) signed \(head.treeSize) entries, only \(size) remain"))
            }
            guard let saved = MerkleFrontier(size: head.treeSize, serialized: stored.frontier), saved.root == head.root else {
                throw AuditError.damaged(path: path, finding: AuditFinding(
                    place: stored.place, kind: .modified, detail: "its stored frontier does not lead to its signed root"))
            }
            frontier = saved
            lastHead = head
        }
        // The unsigned tail is checked as verify checks it before anything is built on it.
        let tail = try Row.fetchCursor(db, sql: #"SELECT "index", time, kind, data, leaf_hash FROM entries WHERE "index" >= ? ORDER BY "index""#,
                                       arguments: [Int64(frontier.size)])
        while let row = try tail.next() {
            switch EntryCheck.check(row, position: frontier.size) {
            case .success(let checked): frontier.append(checked.leafHash)
            case .failure(let problem): throw AuditError.damaged(path: path, finding: problem.finding)
            }
        }
        return State(frontier: frontier, lastHead: lastHead)
    }

    // MARK: Appending

    /// Appends one event, committed (and signed, if a head is due) before it returns.
    @discardableResult
    public func append(_ event: AuditEvent) throws(AuditError) -> AuditRecord {
        try append(contentsOf: CollectionOfOne(event))[0]
    }

    /// Appends events in one transaction: all of them are committed, or none.
    @discardableResult
    public func append(contentsOf events: some Collection<AuditEvent>) throws(AuditError) -> [AuditRecord] {
        try state.withLock { (state: inout State) throws(AuditError) -> [AuditRecord] in
            guard !state.closed else { throw .closed(path: path) }
            guard !events.isEmpty else { return [] }
            let time = options.clock()
            var frontier = state.frontier
            var records: [AuditRecord] = []
            var rows: [StatementArguments] = []
            records.reserveCapacity(events.count)
            rows.reserveCapacity(events.count)
            for event in events {
                let record = AuditRecord(index: frontier.size, time: time, event: event)
                let data: [UInt8]
                do throws(LeafFormatError) { data = try record.leafData() } catch { throw .eventTooLarge(error.description) }
                let hash = Merkle.leafHash(data)
                rows.append([Int64(record.index), Int64(bitPattern: time), event.kind, Data(data), Data(hash.bytes)])
                records.append(record)
                frontier.append(hash)
            }
            var head: SignedTreeHead?
            if frontier.size - state.signedSize >= options.signEvery {
                head = try SignedTreeHead.sign(sequence: state.nextSequence, treeSize: frontier.size, root: frontier.root,
                                               time: time, key: key)
            }
            try catchingSQL(path) {
                if rows.count == 1 && head == nil {
                    // One INSERT is a transaction of its own (autocommit): no BEGIN and COMMIT
                    // statements to run, the same atomicity and durability.
                    try database.writeWithoutTransaction { db in
                        try db.cachedStatement(sql: Schema.insertEntry).execute(arguments: rows[0])
                    }
                } else {
                    try database.write { db in
                        let insert = try db.cachedStatement(sql: Schema.insertEntry)
                        for row in rows { try insert.execute(arguments: row) }
                        if let head { try Self.insert(head, frontier: frontier, db) }
                    }
                }
            }
            state.frontier = frontier
            if let head { state.lastHead = head }
            return records
        }
    }

    /// Signs a head for everything appended so far, unless the last head already covers it.
    @discardableResult
    public func signHead() throws(AuditError) -> SignedTreeHead? {
        try state.withLock { (state: inout State) throws(AuditError) -> SignedTreeHead? in
            guard !state.closed else { throw .closed(path: path) }
            return try signPending(&state)
        }
    }

    private func signPending(_ state: inout State) throws(AuditError) -> SignedTreeHead? {
        let frontier = state.frontier
        guard frontier.size > state.signedSize else { return nil }
        let head = try SignedTreeHead.sign(sequence: state.nextSequence, treeSize: frontier.size, root: frontier.root,
                                           time: options.clock(), key: key)
        try catchingSQL(path) { try database.write { db in try Self.insert(head, frontier: frontier, db) } }
        state.lastHead = head
        return head
    }

    private static func insert(_ head: SignedTreeHead, frontier: MerkleFrontier, _ db: Database) throws {
        try db.cachedStatement(sql: Schema.insertHead).execute(arguments: [
            Int64(head.sequence), Int64(head.treeSize), Data(head.root.bytes), Int64(bitPattern: head.time),
            Data(head.signature), Data(frontier.serialized),
        ])
    }

    /// Signs the unsigned tail, then closes the database and releases the writer's lock.
    /// Further appends throw `.closed`; closing twice does nothing.
    public func close() throws(AuditError) {
        try state.withLock { (state: inout State) throws(AuditError) in
            guard !state.closed else { return }
            defer {
                try? database.close()
                Glibc.close(lockDescriptor)
                state.closed = true
            }
            _ = try signPending(&state)
        }
    }

    // MARK: Reading

    /// Entries appended so far.
    public var size: UInt64 { state.withLock { $0.frontier.size } }
    /// The Merkle root of all entries appended so far (signed or not).
    public var root: MerkleHash { state.withLock { $0.frontier.root } }
    public var lastHead: SignedTreeHead? { state.withLock { $0.lastHead } }

    public func record(at index: UInt64) throws(AuditError) -> AuditRecord? {
        let data = try catchingSQL(path) {
            try database.read { db in try Data.fetchOne(db, sql: #"SELECT data FROM entries WHERE "index" = ?"#, arguments: [Int64(index)]) }
        }
        guard let data else { return nil }
        do { return try AuditRecord(leafData: Array(data)) } catch {
            throw .damaged(path: path, finding: AuditFinding(place: .entry(index), kind: .modified, detail: "leaf data is not an audit record: \(error)"))
        }
    }

    /// Every signed head, oldest first.
    public func heads() throws(AuditError) -> [SignedTreeHead] {
        try catchingSQL(path) {
            try database.read { db in
                try Row.fetchAll(db, sql: "SELECT seq, tree_size, root_hash, time, signature, frontier FROM heads ORDER BY seq")
                    .compactMap { StoredHead($0).head }
            }
        }
    }

    /// PATH(index, D[treeSize]) (RFC 6962 §2.1.1) over the stored leaf hashes.
    public func inclusionProof(index: UInt64, treeSize: UInt64) throws(AuditError) -> [MerkleHash] {
        let leaves = try leafHashes(count: treeSize)
        do { return try Merkle.inclusionProof(index: Int(clamping: index), leafHashes: leaves) } catch {
            throw .invalidRequest("no inclusion proof: \(error)")
        }
    }

    /// PROOF(oldSize, D[newSize]) (RFC 6962 §2.1.2) over the stored leaf hashes.
    public func consistencyProof(oldSize: UInt64, newSize: UInt64) throws(AuditError) -> [MerkleHash] {
        let leaves = try leafHashes(count: newSize)
        do { return try Merkle.consistencyProof(oldSize: Int(clamping: oldSize), leafHashes: leaves) } catch {
            throw .invalidRequest("no consistency proof: \(error)")
        }
    }

    private func leafHashes(count: UInt64) throws(AuditError) -> [MerkleHash] {
        guard count <= size else { throw .invalidRequest("the log has \(size) entries, not \(count)") }
        let blobs = try catchingSQL(path) {
            try database.read { db in
                try Data.fetchAll(db, sql: #"SELECT leaf_hash FROM entries WHERE "index" < ? ORDER BY "index""#, arguments: [Int64(count)])
            }
        }
        let hashes = blobs.compactMap { MerkleHash(bytes: $0) }
        guard hashes.count == Int(count) else { throw .invalidRequest("stored leaf hashes are damaged; run momin audit verify") }
        return hashes
    }

    /// CLOCK_REALTIME in nanoseconds.
    @Sendable public static func wallClock() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(max(now.tv_sec, 0)) * 1_000_000_000 + UInt64(max(now.tv_nsec, 0))
    }
}

/// Runs SQLite work, turning its errors into `AuditError.database` naming the log.
func catchingSQL<T>(_ path: String, _ body: () throws -> T) throws(AuditError) -> T {
    do {
        return try body()
    } catch let error as AuditError {
        throw error
    } catch let error as DatabaseError {
        throw .database(path: path, message: error.message ?? error.description)
    } catch {
        throw .database(path: path, message: "\(error)")
    }
}
