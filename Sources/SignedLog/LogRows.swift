import Foundation
import GRDB
import Merkle

/// The rows of one Merkle tree in a log file: its entries and heads tables (columns "index" and
/// leaf_hash; seq, tree_size, root_hash, time, signature, frontier), all of them or those
/// whose `column` holds `value` (a bucket store's namespace). Every tree-level query is here.
package struct LogRows {
    package static let headColumns = "seq, tree_size, root_hash, time, signature, frontier"

    /// The entries columns the log type reads, "index" first.
    package let entryColumns: String
    private let scope: (column: String, value: String)?

    /// The rows whose `scope.column` is `scope.value`; every row without a scope.
    package init(entryColumns: String, scope: (column: String, value: String)? = nil) {
        self.entryColumns = entryColumns
        self.scope = scope
    }

    /// "column = ? AND " (on `alias`), or nothing, to start a WHERE clause.
    private func filter(_ alias: String = "") -> String { scope.map { "\(alias)\($0.column) = ? AND " } ?? "" }
    private var arguments: StatementArguments { scope.map { [$0.value] } ?? [] }

    /// The entries from `index` on, in index order.
    package func entries(_ db: Database, from index: UInt64 = 0) throws -> RowCursor {
        try Row.fetchCursor(db, sql: #"SELECT \#(entryColumns) FROM entries WHERE \#(filter())"index" >= ? ORDER BY "index""#,
                            arguments: arguments + [Int64(clamping: index)])
    }

    package func heads<Head: SignedHead>(_ db: Database, make: MakeHead<Head>) throws -> [StoredHead<Head>] {
        try Row.fetchAll(db, sql: "SELECT \(Self.headColumns) FROM heads WHERE \(filter())1 ORDER BY seq", arguments: arguments)
            .enumerated().map { StoredHead($1, position: UInt64($0), make: make) }
    }

    package func lastHead<Head: SignedHead>(_ db: Database, make: MakeHead<Head>) throws -> StoredHead<Head>? {
        try Row.fetchOne(db, sql: "SELECT \(Self.headColumns) FROM heads WHERE \(filter())1 ORDER BY seq DESC LIMIT 1",
                         arguments: arguments).map { StoredHead($0, position: 0, make: make) }
    }

    package func insert(_ head: some SignedHead, frontier: MerkleFrontier, _ db: Database) throws {
        let columns = scope.map { "\($0.column), " } ?? ""
        let values = scope == nil ? "" : "?, "
        try db.cachedStatement(sql: "INSERT INTO heads (\(columns)\(Self.headColumns)) VALUES (\(values)?, ?, ?, ?, ?, ?)").execute(
            arguments: arguments + [Int64(head.sequence), Int64(head.treeSize), Data(head.root.bytes), Int64(bitPattern: head.time),
                                    Data(head.signature), Data(frontier.serialized)])
    }

    /// The well-formed stored leaf hashes of the first `count` entries (fewer if any are damaged).
    package func leafHashes(_ db: Database, count: UInt64) throws -> [MerkleHash] {
        try Data.fetchAll(db, sql: #"SELECT leaf_hash FROM entries WHERE \#(filter())"index" < ? ORDER BY "index""#,
                          arguments: arguments + [Int64(clamping: count)]).compactMap { MerkleHash(bytes: $0) }
    }

    /// Why a writer will not build on a tree.
    package enum Refusal: Error {
        /// The last head does not verify with the writer's key.
        case keyMismatch
        case damaged(LogFinding)
    }

    /// The tip a writer resumes from without reading every leaf: the last head's stored frontier
    /// (checked against the head's root and signature), then the unsigned tail, each entry
    /// checked by `check` (its leaf hash, or what is wrong with it at that position).
    package func resume<Head: SignedHead>(_ db: Database, key: some HeadKey, make: MakeHead<Head>,
                              check: (Row, UInt64) throws -> Result<MerkleHash, LogFinding>) throws -> LogTip<Head> {
        func damaged(_ place: LogFinding.Place, _ kind: LogFinding.Kind, _ detail: String) -> Refusal {
            .damaged(LogFinding(place: place, kind: kind, detail: detail))
        }
        let size = try UInt64(Int64.fetchOne(db, sql: #"SELECT coalesce(max("index"), -1) + 1 FROM entries WHERE \#(filter())1"#,
                                             arguments: arguments) ?? 0)
        let rows = try UInt64(Int64.fetchOne(db, sql: "SELECT count(*) FROM entries WHERE \(filter())1", arguments: arguments) ?? 0)
        if rows != size {
            let gap = try Int64.fetchOne(db, sql: #"""
                SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM entries WHERE \#(filter())"index" = 0) THEN 0 ELSE
                  (SELECT min(e."index") + 1 FROM entries e WHERE \#(filter("e."))
                   NOT EXISTS (SELECT 1 FROM entries f WHERE \#(filter("f."))f."index" = e."index" + 1)) END
                """#, arguments: arguments + arguments + arguments) ?? 0
            throw damaged(.entry(UInt64(gap)), .deleted, "missing: \(size - rows) of the indices below \(size) have no row")
        }
        var tip = LogTip<Head>()
        if let stored = try lastHead(db, make: make) {
            let head = try stored.checked().mapError(Refusal.damaged).get()
            guard head.isValid(for: key) else { throw Refusal.keyMismatch }
            guard head.treeSize <= size else {
                throw damaged(.entry(size), .deleted, "missing: head \(head.sequence) signed \(head.treeSize) entries, only \(size) remain")
            }
            guard let saved = MerkleFrontier(size: head.treeSize, serialized: stored.frontier), saved.root == head.root else {
                throw damaged(stored.place, .modified, "its stored frontier does not lead to its signed root")
            }
            tip.frontier = saved
            tip.lastHead = head
        }
        // The unsigned tail is checked before anything is built on it.
        let tail = try entries(db, from: tip.frontier.size)
        while let row = try tail.next() {
            tip.frontier.append(try check(row, tip.frontier.size).mapError(Refusal.damaged).get())
        }
        return tip
    }
}
