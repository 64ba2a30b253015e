import Foundation
import GRDB
import Glibc
import Merkle
import POSIX
import SignedLog
import Synchronization

/// The writer of an audit log: a SQLite database in WAL mode whose rows are the leaves of an
/// RFC 6962 Merkle tree, with a signed tree head every `signEvery` entries, at most
/// `signInterval` after an entry, with every lifecycle event, and on close.
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
        /// N: a head is signed, in the same transaction, when this many entries are unsigned.
        public var signEvery: UInt64
        /// T: a head is signed at most this long after the first entry it signs was committed,
        /// by the append that finds it overdue or, when no append comes, by the log's own thread;
        /// so a writer that crashes leaves at most T of entries unsigned. nil: only every N
        /// entries, with lifecycle events and on close.
        public var signInterval: Duration?
        /// Whether the log runs that thread (on CLOCK_MONOTONIC). Without it only appends and
        /// `signIfDue()` sign overdue entries: for tests that give their own `monotonicClock`,
        /// and callers with a loop of their own.
        public var intervalThread: Bool
        /// Monotonic nanoseconds, for `signInterval`; the thread assumes CLOCK_MONOTONIC.
        public var monotonicClock: @Sendable () -> UInt64
        /// Told of what the interval thread does (tests).
        public var intervalHook: (@Sendable (IntervalEvent) -> Void)?
        /// A file that gets every head this writer signs, one JSON line each (`Witness`).
        public var witnessPath: String?
        public var durability: Durability
        /// Nanoseconds since the Unix epoch, for entries and heads.
        public var clock: @Sendable () -> UInt64
        /// How long to wait for another writer to close the log before `.busy`; zero: not at all.
        /// Writers that share a log (the `momin exec` calls of one long-lived VM) each open it
        /// for one batch of appends and wait their turn here.
        public var lockWait: Duration

        public init(keyPath: String? = nil, signEvery: UInt64 = AuditLog.defaultSignEvery,
                    signInterval: Duration? = AuditLog.defaultSignInterval, intervalThread: Bool = true,
                    monotonicClock: @escaping @Sendable () -> UInt64 = MonotonicClock.nanoseconds,
                    intervalHook: (@Sendable (IntervalEvent) -> Void)? = nil, witnessPath: String? = nil,
                    durability: Durability = .processCrash, clock: @escaping @Sendable () -> UInt64 = AuditLog.wallClock,
                    lockWait: Duration = .zero) {
            self.keyPath = keyPath
            self.signEvery = max(signEvery, 1)
            self.signInterval = signInterval.map { max($0, .zero) }
            self.intervalThread = intervalThread
            self.monotonicClock = monotonicClock
            self.intervalHook = intervalHook
            self.witnessPath = witnessPath
            self.durability = durability
            self.clock = clock
            self.lockWait = lockWait
        }
    }

    /// N (docs/audit.md, "When heads are signed").
    public static let defaultSignEvery: UInt64 = 1024
    /// T (docs/audit.md, "When heads are signed").
    public static let defaultSignInterval: Duration = .seconds(5)

    /// What the interval thread did.
    public enum IntervalEvent: Sendable, Equatable {
        /// It signed the head of an overdue tail.
        case signed(SignedTreeHead)
        /// It ended: the log was closed (or dropped).
        case stopped
    }

    public let path: String
    public let key: AuditKey
    let options: Options
    private let database: DatabaseQueue
    private let lock: WriterLock
    private let state: Mutex<State>
    private let signer: IntervalSigner?
    private let witness: Witness?

    struct State {
        var tip: LogTip<SignedTreeHead>
        var closed = false
        /// When (`monotonicClock`) the first entry after the last head was committed.
        var unsignedSince: UInt64?
        /// A head the interval thread could not sign, or one that could not be witnessed: the
        /// log takes no more appends (docs/audit.md).
        var failure: AuditError?
    }

    /// The log's identity, fixed when it was created and signed into every head.
    public let logID: LogID

    /// Opens the log at `path`, creating it (and the key) if needed. An existing log is resumed:
    /// the frontier comes from its last signed head (checked against the head's root and
    /// signature) and the entries after it (each checked as `verify` does).
    public convenience init(path: String, options: Options = Options()) throws(AuditError) {
        let lock: WriterLock
        do { lock = try WriterLock(path: path, waiting: options.lockWait) } catch { throw AuditError(error, path: path) }
        do {
            let key = try AuditKey.loadOrCreate(path: options.keyPath ?? path + ".key")
            let witness = try options.witnessPath.map { witnessPath throws(AuditError) in try Witness(path: witnessPath, log: path) }
            let (database, (logID, tip)) = try catchingSQL(path) {
                try Schema.file.openWriter(path: path, synchronous: options.durability == .powerLoss ? "FULL" : "NORMAL") { db in
                    try Self.resume(db, path: path, key: key)
                }
            }
            self.init(path: path, key: key, logID: logID, options: options, database: database, lock: lock, witness: witness,
                      state: State(tip: tip))
        } catch {
            lock.release()
            throw error
        }
    }

    private init(path: String, key: AuditKey, logID: LogID, options: Options, database: DatabaseQueue, lock: WriterLock,
                 witness: Witness?, state: State) {
        self.path = path
        self.witness = witness
        self.key = key
        self.logID = logID
        self.options = options
        self.database = database
        self.lock = lock
        self.state = Mutex(state)
        if options.intervalThread, options.signInterval != nil {
            let weak = WeakLog()
            signer = IntervalSigner(hook: options.intervalHook) { weak.log?.signOverdue() ?? false }
            weak.log = self
        } else {
            signer = nil
        }
        // A resumed log's unsigned tail (a writer that crashed) is due from now.
        if state.tip.unsigned > 0 { self.state.withLock { $0.unsignedSince = options.monotonicClock() } }
        armSigner()
    }

    private final class WeakLog: @unchecked Sendable {
        weak var log: AuditLog?
    }

    deinit {
        try? close()
    }

    /// The log's identity and the tree so far, each entry of the unsigned tail checked as
    /// `verify` checks it.
    private static func resume(_ db: Database, path: String, key: AuditKey) throws -> (LogID, LogTip<SignedTreeHead>) {
        let logID: LogID
        switch try LogID.read(db) {
        case .success(let id): logID = id
        case .failure(let finding): throw AuditError.damaged(path: path, finding: finding)
        }
        do {
            let tip = try Schema.rows.resume(db, key: key.publicKey, make: SignedTreeHead.maker(logID)) { row, position in
                EntryCheck.check(row, position: position).map(\.leafHash).mapError(\.finding)
            }
            return (logID, tip)
        } catch LogRows.Refusal.keyMismatch {
            throw AuditError.keyMismatch(path: path, keyPath: key.path)
        } catch LogRows.Refusal.damaged(let finding) {
            throw AuditError.damaged(path: path, finding: finding)
        }
    }

    // MARK: Appending

    /// Appends one event, committed (and signed, if a head is due) before it returns.
    @discardableResult
    public func append(_ event: AuditEvent) throws(AuditError) -> AuditRecord {
        try append(contentsOf: CollectionOfOne(event))[0]
    }

    /// Appends events in one transaction: all of them are committed, or none. The transaction
    /// signs a head too when it leaves `signEvery` entries unsigned, when the first unsigned
    /// entry has waited `signInterval`, or when an event is a lifecycle event. A head that is
    /// committed but cannot be witnessed throws `.witness` after the commit (and the log takes
    /// no more appends).
    @discardableResult
    public func append(contentsOf events: some Collection<AuditEvent>) throws(AuditError) -> [AuditRecord] {
        let records = try state.withLock { (state: inout State) throws(AuditError) -> [AuditRecord] in
            guard !state.closed else { throw .closed(path: path) }
            if let failure = state.failure { throw failure }
            guard !events.isEmpty else { return [] }
            let time = options.clock()
            let now = options.monotonicClock()
            var frontier = state.tip.frontier
            var records: [AuditRecord] = []
            var rows: [StatementArguments] = []
            records.reserveCapacity(events.count)
            rows.reserveCapacity(events.count)
            var lifecycle = false
            for event in events {
                let record = AuditRecord(index: frontier.size, time: time, event: event)
                let data: [UInt8]
                do throws(LeafFormatError) { data = try record.leafData() } catch { throw .eventTooLarge(error.description) }
                let hash = Merkle.leafHash(data)
                rows.append([Int64(record.index), Int64(bitPattern: time), event.kind, Data(data), Data(hash.bytes)])
                records.append(record)
                frontier.append(hash)
                if case .lifecycle = event { lifecycle = true }
            }
            var head: SignedTreeHead?
            if frontier.size - state.tip.signedSize >= options.signEvery || lifecycle || overdue(state, now: now) {
                head = try SignedTreeHead.sign(logID: logID, sequence: state.tip.nextSequence, treeSize: frontier.size, root: frontier.root,
                                               time: time, key: key)
            }
            try catchingSQL(path) {
                if head != nil { try durableForWitness() }
                defer { if head != nil { try? restoreDurability() } }
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
                        if let head { try Schema.rows.insert(head, frontier: frontier, db) }
                    }
                }
            }
            state.tip.frontier = frontier
            if let head {
                state.tip.lastHead = head
                state.unsignedSince = nil
                try witness(head, &state)
            } else if state.unsignedSince == nil {
                state.unsignedSince = now
            }
            return records
        }
        armSigner()
        return records
    }

    /// Whether the first unsigned entry has waited `signInterval` by `now`.
    private func overdue(_ state: State, now: UInt64) -> Bool {
        guard let interval = options.signInterval, let since = state.unsignedSince else { return false }
        return now &- since >= interval.nanoseconds
    }

    /// Has the interval thread wake when the unsigned tail falls due, or sleep when there is none.
    /// A thread that cannot be started leaves nothing unsigned instead: the tail is signed now.
    private func armSigner() {
        guard let signer, let interval = options.signInterval else { return }
        let since = state.withLock { $0.closed ? nil : $0.unsignedSince }
        guard let since else { return signer.disarm() }
        if !signer.arm(at: since &+ interval.nanoseconds) { _ = try? signHead() }
    }

    /// Signs a head for everything appended so far, unless the last head already covers it.
    @discardableResult
    public func signHead() throws(AuditError) -> SignedTreeHead? {
        let head = try state.withLock { (state: inout State) throws(AuditError) -> SignedTreeHead? in
            guard !state.closed else { throw .closed(path: path) }
            if let failure = state.failure { throw failure }
            return try signPending(&state)
        }
        armSigner()
        return head
    }

    /// Signs the unsigned tail if its first entry has waited `signInterval` (by `monotonicClock`),
    /// as an append would; what the interval thread does, for callers without it.
    @discardableResult
    public func signIfDue() throws(AuditError) -> SignedTreeHead? {
        let head = try state.withLock { (state: inout State) throws(AuditError) -> SignedTreeHead? in
            guard !state.closed else { throw .closed(path: path) }
            if let failure = state.failure { throw failure }
            return overdue(state, now: options.monotonicClock()) ? try signPending(&state) : nil
        }
        armSigner()
        return head
    }

    /// The interval thread's signing: false once the log is closed. What fails is kept for the
    /// next append to throw, as the thread has no caller to tell.
    private func signOverdue() -> Bool {
        let signed: SignedTreeHead?
        do {
            signed = try state.withLock { (state: inout State) throws(AuditError) -> SignedTreeHead? in
                guard !state.closed else { throw .closed(path: path) }
                guard state.failure == nil, overdue(state, now: options.monotonicClock()) else { return nil }
                do { return try signPending(&state) } catch {
                    // A witness that failed has said so already.
                    if state.failure == nil {
                        state.failure = .signing(path: path, problem: "the interval thread could not sign the unsigned tail: \(error)")
                    }
                    return nil
                }
            }
        } catch {
            return false
        }
        armSigner()
        if let signed { options.intervalHook?(.signed(signed)) }
        return true
    }

    private func signPending(_ state: inout State) throws(AuditError) -> SignedTreeHead? {
        let frontier = state.tip.frontier
        guard state.tip.unsigned > 0 else { return nil }
        let head = try SignedTreeHead.sign(logID: logID, sequence: state.tip.nextSequence, treeSize: frontier.size, root: frontier.root,
                                           time: options.clock(), key: key)
        try catchingSQL(path) {
            try durableForWitness()
            defer { try? restoreDurability() }
            try database.write { db in try Schema.rows.insert(head, frontier: frontier, db) }
        }
        state.tip.lastHead = head
        state.unsignedSince = nil
        try witness(head, &state)
        return head
    }

    /// Appends a committed head to the witness file; one that cannot be written closes the log
    /// to appends (the head is in the log, the witness is behind it).
    private func witness(_ head: SignedTreeHead, _ state: inout State) throws(AuditError) {
        guard let witness else { return }
        do { try witness.append(PublishedHead(head: head, keyFingerprint: key.publicKey.fingerprint), log: path) } catch {
            state.failure = error
            throw error
        }
    }

    /// With a witness, a head's transaction waits for fsync of the WAL (synchronous=FULL)
    /// whatever `durability` says: a witness line must never name a head that a power loss
    /// could still take from the log.
    private func durableForWitness() throws {
        guard witness != nil, options.durability == .processCrash else { return }
        try database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
    }

    private func restoreDurability() throws {
        guard witness != nil, options.durability == .processCrash else { return }
        try database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
    }

    /// Signs the unsigned tail, then closes the database and releases the writer's lock.
    /// Further appends throw `.closed`; closing twice does nothing.
    /// Throws what the interval thread could not do, if anything (after closing all the same).
    public func close() throws(AuditError) {
        defer { signer?.stop() }
        try state.withLock { (state: inout State) throws(AuditError) in
            guard !state.closed else { return }
            defer {
                try? database.close()
                witness?.close()
                lock.release()
                state.closed = true
            }
            _ = try signPending(&state)
            if let failure = state.failure { throw failure }
        }
    }

    // MARK: Reading

    /// Entries appended so far.
    public var size: UInt64 { state.withLock { $0.tip.frontier.size } }
    /// The Merkle root of all entries appended so far (signed or not).
    public var root: MerkleHash { state.withLock { $0.tip.frontier.root } }
    public var lastHead: SignedTreeHead? { state.withLock { $0.tip.lastHead } }

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
        try catchingSQL(path) { try database.read { db in try Schema.rows.heads(db, make: SignedTreeHead.maker(logID)).compactMap(\.head) } }
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
        let hashes = try catchingSQL(path) { try database.read { db in try Schema.rows.leafHashes(db, count: count) } }
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

extension Duration {
    /// Whole nanoseconds, 0 for a negative span, saturating at UInt64.max.
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        let (sum, carry) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return overflow || carry ? .max : sum
    }
}
