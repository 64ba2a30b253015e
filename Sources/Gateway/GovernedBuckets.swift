import Buckets
import Crypto
import Merkle
import Policy

/// Bucket calls through the gateway: the session's limits and the policy's `buckets` rules
/// decide (namespace glob and operation), the request and decision are logged before the store
/// is touched, and the result's digest after. A denied put leaves the store as it was.
///
/// Bucket calls have no Doors frame of their own yet, so the logged arguments are a small
/// canonical text, one `name=value` line each in a fixed order: `op`, `namespace`, then
/// `key` and `value-sha256` and `tags` (put), `key` (get), or the query's filters. A value's
/// bytes are never logged, only their SHA-256.
public final class GovernedBuckets {
    private let session: GovernedSession
    private let store: BucketStore

    public init(session: GovernedSession, store: BucketStore) {
        self.session = session
        self.store = store
    }

    public func put(namespace: String, key: String, value: [UInt8], tags: [String] = []) throws(GatewayError) -> BucketEntry {
        let digest = Hex.encode(SHA256.hash(data: value))
        let id = try admit(.put, namespace, ["key=\(key)", "value-sha256=\(digest)", "tags=\(tags.joined(separator: ","))"])
        var result = ResultHasher()
        let entry: BucketEntry
        do { entry = try store.put(namespace: namespace, key: key, value: value, tags: tags) } catch {
            try session.finish(id, status: -1, result: result, countsAsOutput: false)
            throw .bucket(error)
        }
        result.add(stream: 1, entry.leafData)
        try session.finish(id, status: 0, result: result, countsAsOutput: false)
        return entry
    }

    /// The newest value under `key`, or nil. Its bytes count as output the agent received.
    public func get(namespace: String, key: String) throws(GatewayError) -> BucketValue? {
        let id = try admit(.get, namespace, ["key=\(key)"])
        var result = ResultHasher()
        let found: BucketValue?
        do { found = try store.get(namespace: namespace, key: key) } catch {
            try session.finish(id, status: -1, result: result)
            throw .bucket(error)
        }
        if let found { result.add(stream: 1, found.value) }
        try session.finish(id, status: found == nil ? 1 : 0, result: result)
        return found
    }

    public func query(_ query: BucketQuery) throws(GatewayError) -> [BucketEntry] {
        var filters = ["key-prefix=\(query.keyPrefix ?? "")", "tags=\(query.tags.joined(separator: ","))",
                       "since=\(query.since.map(String.init) ?? "")", "until=\(query.until.map(String.init) ?? "")",
                       "latest-only=\(query.latestOnly)", "limit=\(query.limit.map(String.init) ?? "")"]
        filters.sort()
        let id = try admit(.query, query.namespace, filters)
        var result = ResultHasher()
        let entries: [BucketEntry]
        do { entries = try store.query(query) } catch {
            try session.finish(id, status: -1, result: result, countsAsOutput: false)
            throw .bucket(error)
        }
        for entry in entries { result.add(stream: 1, entry.leafData) }
        try session.finish(id, status: 0, result: result, countsAsOutput: false)
        return entries
    }

    private func admit(_ operation: BucketOperation, _ namespace: String, _ fields: [String]) throws(GatewayError) -> UInt64 {
        let text = (["op=\(operation.rawValue)", "namespace=\(namespace)"] + fields).joined(separator: "\n") + "\n"
        return try session.admit(.bucket(namespace: namespace, operation: operation), tool: "bucket-\(operation.rawValue)",
                                 arguments: Array(text.utf8))
    }
}
