import Audit
import Foundation
import GRDB
import Merkle
import SignedLog
import Synchronization

/// A value and the entry that holds it.
public struct BucketValue: Hashable, Sendable {
    public var entry: BucketEntry
    public var value: [UInt8]
}

/// What `query` selects in one namespace. Every filter given must hold; results are in index
/// order. With `latestOnly`, only the newest version of each key is a candidate.
public struct BucketQuery: Hashable, Sendable {
    public var namespace: String
    public var keyPrefix: String?
    /// Tags the entry must all carry.
    public var tags: [String]
    /// Entries with time ≥ since (ns since the Unix epoch).
    public var since: UInt64?
    /// Entries with time < until.
    public var until: UInt64?
    public var latestOnly: Bool
    public var limit: Int?

    public init(namespace: String, keyPrefix: String? = nil, tags: [String] = [], since: UInt64? = nil, until: UInt64? = nil,
                latestOnly: Bool = false, limit: Int? = nil) {
        self.namespace = namespace
        self.keyPrefix = keyPrefix
        self.tags = tags
        self.since = since
        self.until = until
        self.latestOnly = latestOnly
        self.limit = limit
    }
}

/// A bucket store: one SQLite file (WAL mode) holding any number of namespaces, each an
/// append-only list of entries that are the leaves of its own RFC 6962 Merkle tree, with a
/// signed head per namespace every `signEvery` puts and on close. Values are stored once per
/// content hash. There is no API that changes or removes anything, and the schema's triggers
/// refuse it too. One writer per file (flock); read-only stores may be opened beside it.
public final class BucketStore: Sendable {
    public struct Options: Sendable {
        /// The signing key; default `<db>.key` (made on first use, mode 0600).
        public var keyPath: String?
        /// A namespace's head is signed, in the same transaction as the put, when this many of
        /// its entries are unsigned.
        public var signEvery: UInt64
        /// Nanoseconds since the Unix epoch, for entries and heads.
        public var clock: @Sendable () -> UInt64
        /// Opens for reading only: no lock, no key, put refused.
        public var readOnly: Bool

        public init(keyPath: String? = nil, signEvery: UInt64 = 256, clock: @escaping @Sendable () -> UInt64 = AuditLog.wallClock,
                    readOnly: Bool = false) {
            self.keyPath = keyPath
            self.signEvery = max(signEvery, 1)
            self.clock = clock
            self.readOnly = readOnly
        }
    }

    public let path: String
    /// The writer's key; nil when read-only.
    public let key: AuditKey?
    let options: Options
    private let database: DatabaseQueue
    /// The writer's lock; nil when read-only.
    private let lock: WriterLock?
    private let state: Mutex<State>

    struct State {
        var spaces: [String: LogTip<BucketHead>] = [:]
        var closed = false
    }

    /// Opens the store at `path`. A writer creates it (and the key) if needed and resumes an
    /// existing one: each namespace's frontier from its last signed head (checked against the
    /// head's root and signature) and the entries after it (each leaf hash recomputed).
    public convenience init(path: String, options: Options = Options()) throws(BucketError) {
        if options.readOnly {
            let opened = try catchingSQL(path) { try BucketSchema.file.openReader(path: path) }
            self.init(path: path, key: nil, options: options, database: opened, lock: nil, state: State())
            return
        }
        let lock: WriterLock
        do { lock = try WriterLock(path: path, waiting: .zero) } catch { throw BucketError(error, path: path) }
        do throws(BucketError) {
            let key: AuditKey
            do { key = try AuditKey.loadOrCreate(path: options.keyPath ?? path + ".key") } catch { throw BucketError.key(error.description) }
            let (database, spaces) = try catchingSQL(path) {
                try BucketSchema.file.openWriter(path: path) { db in try Self.resume(db, path: path, key: key) }
            }
            self.init(path: path, key: key, options: options, database: database, lock: lock, state: State(spaces: spaces))
        } catch {
            lock.release()
            throw error
        }
    }

    private init(path: String, key: AuditKey?, options: Options, database: DatabaseQueue, lock: WriterLock?, state: State) {
        self.path = path
        self.key = key
        self.options = options
        self.database = database
        self.lock = lock
        self.state = Mutex(state)
    }

    deinit {
        try? close()
    }

    /// Each namespace's tree, each entry of its unsigned tail checked against its leaf hash.
    private static func resume(_ db: Database, path: String, key: AuditKey) throws -> [String: LogTip<BucketHead>] {
        var spaces: [String: LogTip<BucketHead>] = [:]
        for namespace in try String.fetchAll(db, sql: "SELECT namespace FROM entries UNION SELECT namespace FROM heads") {
            do {
                spaces[namespace] = try BucketSchema.rows(namespace).resume(db, key: key.publicKey, make: BucketSchema.makeHead(namespace)) { row, position in
                    let tags = try BucketSchema.tags(db, namespace: namespace, index: position)
                    return switch StoredEntry.read(row, namespace: namespace, tags: tags) {
                    case .failure(let why): .failure(LogFinding(place: .entry(position), kind: .modified, detail: "\(why)"))
                    case .success(let stored) where stored.entry.index == position && stored.entry.leafHash == stored.storedLeafHash:
                        .success(stored.storedLeafHash)
                    case .success: .failure(LogFinding(place: .entry(position), kind: .modified, detail: "its fields do not match its leaf hash"))
                    }
                }
            } catch LogRows.Refusal.keyMismatch {
                throw BucketError.keyMismatch(path: path, keyPath: key.path)
            } catch LogRows.Refusal.damaged(var finding) {
                finding.detail += "; run momin bucket verify"
                throw BucketError.damaged(path: path, finding: BucketFinding(finding, namespace: namespace))
            }
        }
        return spaces
    }

    // MARK: Writing

    /// Appends a new version of `key`: the value (stored once per content hash), the entry, its
    /// tags, and the namespace's head if one is due, in one transaction committed before it returns.
    @discardableResult
    public func put(namespace: String, key: String, value: [UInt8], tags: [String] = []) throws(BucketError) -> BucketEntry {
        try BucketLimits.checkNamespace(namespace)
        try BucketLimits.checkKey(key)
        try BucketLimits.checkValue(value)
        let tags = try BucketLimits.canonicalTags(tags)
        let contentHash = BucketEntry.contentHash(of: value)
        return try state.withLock { (state: inout State) throws(BucketError) -> BucketEntry in
            guard !state.closed else { throw .closed(path: path) }
            guard let signer = self.key else { throw .readOnly(path: path) }
            var space = state.spaces[namespace] ?? LogTip()
            let time = options.clock()
            let entry = BucketEntry(namespace: namespace, index: space.frontier.size, key: key, contentHash: contentHash,
                                    size: UInt64(value.count), tags: tags, time: time)
            let leafHash = entry.leafHash
            space.frontier.append(leafHash)
            var head: BucketHead?
            if space.unsigned >= options.signEvery {
                head = try BucketHead.sign(namespace: namespace, sequence: space.nextSequence, treeSize: space.frontier.size,
                                           root: space.frontier.root, time: time, key: signer)
            }
            let frontier = space.frontier
            try catchingSQL(path) {
                try database.write { db in
                    try db.cachedStatement(sql: BucketSchema.insertBlob).execute(arguments: [
                        Data(contentHash.bytes), Int64(value.count), Data(value),
                    ])
                    try db.cachedStatement(sql: BucketSchema.insertEntry).execute(arguments: [
                        namespace, Int64(entry.index), key, Data(contentHash.bytes), Int64(value.count), Int64(bitPattern: time),
                        Data(leafHash.bytes),
                    ])
                    let insertTag = try db.cachedStatement(sql: BucketSchema.insertTag)
                    for tag in tags { try insertTag.execute(arguments: [namespace, tag, Int64(entry.index)]) }
                    if let head { try BucketSchema.rows(namespace).insert(head, frontier: frontier, db) }
                }
            }
            if let head { space.lastHead = head }
            state.spaces[namespace] = space
            return entry
        }
    }

    /// Signs a head for every namespace with unsigned entries; returns the new heads.
    @discardableResult
    public func signHeads() throws(BucketError) -> [BucketHead] {
        try state.withLock { (state: inout State) throws(BucketError) -> [BucketHead] in
            guard !state.closed else { throw .closed(path: path) }
            return try signPending(&state)
        }
    }

    private func signPending(_ state: inout State) throws(BucketError) -> [BucketHead] {
        guard let signer = key else { return [] }
        var heads: [BucketHead] = []
        for namespace in state.spaces.keys.sorted() {
            guard var space = state.spaces[namespace], space.unsigned > 0 else { continue }
            let head = try BucketHead.sign(namespace: namespace, sequence: space.nextSequence, treeSize: space.frontier.size,
                                           root: space.frontier.root, time: options.clock(), key: signer)
            let frontier = space.frontier
            try catchingSQL(path) { try database.write { db in try BucketSchema.rows(namespace).insert(head, frontier: frontier, db) } }
            space.lastHead = head
            state.spaces[namespace] = space
            heads.append(head)
        }
        return heads
    }

    /// Signs what is unsigned (a writer), then closes the database and releases the lock.
    /// Further calls throw `.closed`; closing twice does nothing.
    public func close() throws(BucketError) {
        try state.withLock { (state: inout State) throws(BucketError) in
            guard !state.closed else { return }
            defer {
                try? database.close()
                lock?.release()
                state.closed = true
            }
            _ = try signPending(&state)
        }
    }

    // MARK: Reading

    /// Every namespace with an entry, sorted.
    public func namespaces() throws(BucketError) -> [String] {
        try reading { db in try String.fetchAll(db, sql: "SELECT DISTINCT namespace FROM entries ORDER BY namespace") }
    }

    /// The newest version of `key`, with its value (checked against its content hash); nil if none.
    public func get(namespace: String, key: String) throws(BucketError) -> BucketValue? {
        try BucketLimits.checkNamespace(namespace)
        try BucketLimits.checkKey(key)
        let entry = try reading { db in
            try Row.fetchOne(db, sql: #"SELECT \#(BucketSchema.entryColumns) FROM entries WHERE namespace = ? AND key = ? ORDER BY "index" DESC LIMIT 1"#,
                             arguments: [namespace, key]).map { try self.checkedEntry($0, namespace: namespace, db) }
        }
        guard let entry else { return nil }
        return BucketValue(entry: entry, value: try value(of: entry))
    }

    /// The entry at `index` of a namespace; nil if there is none.
    public func entry(namespace: String, index: UInt64) throws(BucketError) -> BucketEntry? {
        try reading { db in
            try Row.fetchOne(db, sql: #"SELECT \#(BucketSchema.entryColumns) FROM entries WHERE namespace = ? AND "index" = ?"#,
                             arguments: [namespace, Int64(clamping: index)]).map { try self.checkedEntry($0, namespace: namespace, db) }
        }
    }

    /// The value an entry names, checked against its size and content hash.
    public func value(of entry: BucketEntry) throws(BucketError) -> [UInt8] {
        let data = try reading { db in
            try Data.fetchOne(db, sql: "SELECT data FROM blobs WHERE hash = ?", arguments: [Data(entry.contentHash.bytes)])
        }
        let place = BucketFinding.Place.entry(namespace: entry.namespace, index: entry.index)
        guard let data else {
            throw .damaged(path: path, finding: BucketFinding(place: place, kind: .deleted, detail: "its value \(entry.contentHash.hex) is missing"))
        }
        let value = Array(data)
        guard UInt64(value.count) == entry.size, BucketEntry.contentHash(of: value) == entry.contentHash else {
            throw .damaged(path: path, finding: BucketFinding(place: place, kind: .valueModified,
                                                              detail: "its value's bytes do not hash to \(entry.contentHash.hex)"))
        }
        return value
    }

    /// The entries of `query.namespace` that pass every filter, in index order.
    public func query(_ query: BucketQuery) throws(BucketError) -> [BucketEntry] {
        try BucketLimits.checkNamespace(query.namespace)
        if let limit = query.limit, limit < 0 { throw .invalid("limit \(limit) is negative") }
        var conditions = ["e.namespace = ?"]
        var arguments: StatementArguments = [query.namespace]
        if let prefix = query.keyPrefix, !prefix.isEmpty {
            // Byte-wise: SQLite's BINARY order is memcmp on UTF-8, so the range narrows by the index.
            conditions.append("e.key >= ? AND substr(CAST(e.key AS BLOB), 1, ?) = CAST(? AS BLOB)")
            arguments += [prefix, prefix.utf8.count, prefix]
        }
        for tag in try BucketLimits.canonicalTags(query.tags) {
            conditions.append(#"EXISTS (SELECT 1 FROM tags t WHERE t.namespace = e.namespace AND t.tag = ? AND t."index" = e."index")"#)
            arguments += [tag]
        }
        if let since = query.since {
            conditions.append("e.time >= ?")
            arguments += [Int64(clamping: since)]
        }
        if let until = query.until {
            conditions.append("e.time < ?")
            arguments += [Int64(clamping: until)]
        }
        if query.latestOnly {
            conditions.append(#"NOT EXISTS (SELECT 1 FROM entries n WHERE n.namespace = e.namespace AND n.key = e.key AND n."index" > e."index")"#)
        }
        var sql = "SELECT \(BucketSchema.entryColumns.split(separator: ",").map { "e." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", ")) "
            + #"FROM entries e WHERE \#(conditions.joined(separator: " AND ")) ORDER BY e."index""#
        if let limit = query.limit {
            sql += " LIMIT ?"
            arguments += [limit]
        }
        let namespace = query.namespace
        return try reading { db in
            try Row.fetchAll(db, sql: sql, arguments: arguments).map { try self.checkedEntry($0, namespace: namespace, db) }
        }
    }

    /// The newest signed head of a namespace, if it has one.
    public func latestHead(namespace: String) throws(BucketError) -> BucketHead? {
        let stored = try reading { db in try BucketSchema.rows(namespace).lastHead(db, make: BucketSchema.makeHead(namespace)) }
        switch stored?.checked() {
        case nil: return nil
        case .success(let head): return head
        case .failure(let finding): throw .damaged(path: path, finding: BucketFinding(finding, namespace: namespace))
        }
    }

    /// An inclusion proof of `entry` against the newest signed head of its namespace
    /// (PATH(index, D[treeSize]), RFC 6962 §2.1.1, over the stored leaf hashes).
    public func inclusionProof(for entry: BucketEntry) throws(BucketError) -> BucketProof {
        guard let head = try latestHead(namespace: entry.namespace), entry.index < head.treeSize else {
            throw .unsigned(namespace: entry.namespace, index: entry.index)
        }
        let leaves = try reading { db in try BucketSchema.rows(entry.namespace).leafHashes(db, count: head.treeSize) }
        guard leaves.count == Int(head.treeSize) else {
            throw .damaged(path: path, finding: BucketFinding(place: .entry(namespace: entry.namespace, index: UInt64(leaves.count)),
                                                              kind: .deleted, detail: "stored leaf hashes are missing or malformed"))
        }
        do {
            return BucketProof(entry: entry, head: head, path: try Merkle.inclusionProof(index: Int(entry.index), leafHashes: leaves))
        } catch {
            throw .proof("\(error)")
        }
    }

    /// An entries row as a `BucketEntry`, refused unless its fields hash to its leaf hash.
    private func checkedEntry(_ row: Row, namespace: String, _ db: Database) throws -> BucketEntry {
        let index = UInt64(max(row[0] as Int64? ?? 0, 0))
        let tags = try BucketSchema.tags(db, namespace: namespace, index: index)
        switch StoredEntry.read(row, namespace: namespace, tags: tags) {
        case .failure(let why):
            throw BucketError.damaged(path: path, finding: BucketFinding(place: .entry(namespace: namespace, index: index), kind: .modified, detail: "\(why)"))
        case .success(let stored):
            guard stored.entry.leafHash == stored.storedLeafHash else {
                throw BucketError.damaged(path: path, finding: BucketFinding(
                    place: .entry(namespace: namespace, index: index), kind: .modified, detail: "its fields do not match its leaf hash"))
            }
            return stored.entry
        }
    }

    private func reading<T>(_ body: (Database) throws -> T) throws(BucketError) -> T {
        try state.withLock { (state: inout State) throws(BucketError) -> Void in
            guard !state.closed else { throw .closed(path: path) }
        }
        return try catchingSQL(path) { try database.read(body) }
    }
}
