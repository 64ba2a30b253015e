import Audit
import Crypto
import Merkle
import SignedLog

/// The bounds on what one put may hold. Checked before anything is written.
public enum BucketLimits {
    public static let namespaceBytes = 256
    public static let keyBytes = 1024
    public static let valueBytes = 16 << 20
    public static let tagCount = 16
    public static let tagBytes = 64

    /// A namespace as the policy names it (docs/policy.md, "Buckets"): "/"-separated names,
    /// none empty, "." or "..", no control characters.
    public static func checkNamespace(_ namespace: String) throws(BucketError) {
        let size = namespace.utf8.count
        guard size > 0, size <= namespaceBytes else {
            throw .invalid("namespace \(quoted(namespace)) is \(size) bytes: 1 to \(namespaceBytes) allowed")
        }
        guard !hasControl(namespace) else { throw .invalid("namespace \(quoted(namespace)) holds a control character") }
        for part in namespace.split(separator: "/", omittingEmptySubsequences: false) where part.isEmpty || part == "." || part == ".." {
            throw .invalid("namespace \(quoted(namespace)) is malformed: \"/\"-separated names, none empty, \".\" or \"..\"")
        }
    }

    public static func checkKey(_ key: String) throws(BucketError) {
        let size = key.utf8.count
        guard size > 0, size <= keyBytes else { throw .invalid("key \(quoted(key)) is \(size) bytes: 1 to \(keyBytes) allowed") }
        guard !hasControl(key) else { throw .invalid("key \(quoted(key)) holds a control character") }
    }

    public static func checkValue(_ value: some Collection<UInt8>) throws(BucketError) {
        guard value.count <= valueBytes else {
            throw .invalid("value is \(value.count) bytes: at most \(valueBytes) (16 MiB) allowed")
        }
    }

    /// The canonical tag set: each tag checked, then sorted by UTF-8 bytes with repeats dropped.
    public static func canonicalTags(_ tags: [String]) throws(BucketError) -> [String] {
        for tag in tags {
            let size = tag.utf8.count
            guard size > 0, size <= tagBytes else { throw .invalid("tag \(quoted(tag)) is \(size) bytes: 1 to \(tagBytes) allowed") }
            guard !tag.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7f || $0 == UInt8(ascii: ",") }) else {
                throw .invalid("tag \(quoted(tag)) holds a space, comma or control character")
            }
        }
        var sorted = tags.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) }
        sorted = sorted.enumerated().filter { $0.offset == 0 || sorted[$0.offset - 1] != $0.element }.map(\.element)
        guard sorted.count <= tagCount else { throw .invalid("\(sorted.count) tags: at most \(tagCount) allowed") }
        return sorted.map { String(decoding: $0, as: UTF8.self) }
    }

    static func hasControl(_ text: String) -> Bool { text.utf8.contains { $0 < 0x20 || $0 == 0x7f } }

    static func quoted(_ text: String) -> String {
        let shown = text.utf8.count > 80 ? String(decoding: text.utf8.prefix(77), as: UTF8.self) + "..." : text
        return "\"" + shown.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined() + "\""
    }
}

/// One put: a version of a key in a namespace, and leaf `index` of that namespace's Merkle tree.
public struct BucketEntry: Hashable, Sendable {
    public var namespace: String
    public var index: UInt64
    public var key: String
    /// SHA-256 of the value: its content address.
    public var contentHash: MerkleHash
    /// The value's length in bytes.
    public var size: UInt64
    /// Sorted by UTF-8 bytes, no repeats.
    public var tags: [String]
    /// Nanoseconds since the Unix epoch.
    public var time: UInt64

    public init(namespace: String, index: UInt64, key: String, contentHash: MerkleHash, size: UInt64, tags: [String], time: UInt64) {
        self.namespace = namespace
        self.index = index
        self.key = key
        self.contentHash = contentHash
        self.size = size
        self.tags = tags
        self.time = time
    }

    public static let encodingVersion: UInt8 = 1

    /// The canonical leaf bytes (docs/buckets.md, "Leaf encoding"): u8 version · string
    /// namespace · u64 index · u64 time · string key · 32-byte content hash · u64 size ·
    /// u64 tag count · string tags..., integers big-endian, strings u32 length + UTF-8.
    public var leafData: [UInt8] {
        var out = LeafWriter()
        out.u8(Self.encodingVersion)
        out.string(namespace)
        out.u64(index)
        out.u64(time)
        out.string(key)
        out.digest(contentHash)
        out.u64(size)
        out.u64(UInt64(tags.count))
        for tag in tags { out.string(tag) }
        return out.bytes
    }

    /// SHA-256(0x00 ‖ leaf bytes), RFC 6962 §2.1.
    public var leafHash: MerkleHash { Merkle.leafHash(leafData) }

    /// The content address of `value`: SHA-256 of its bytes.
    public static func contentHash(of value: some Collection<UInt8>) -> MerkleHash {
        MerkleHash(bytes: Array(SHA256.hash(data: Array(value))))!
    }
}

/// A signed statement that namespace `namespace` has `treeSize` entries with Merkle root `root`
/// (a signed tree head, RFC 6962 §3.5, in our own byte layout).
public struct BucketHead: SignedHead {
    public var namespace: String
    public var sequence: UInt64
    public var treeSize: UInt64
    public var root: MerkleHash
    public var time: UInt64
    /// Ed25519 over `signedBytes`, 64 bytes.
    public var signature: [UInt8]

    public init(namespace: String, sequence: UInt64, treeSize: UInt64, root: MerkleHash, time: UInt64, signature: [UInt8]) {
        self.namespace = namespace
        self.sequence = sequence
        self.treeSize = treeSize
        self.root = root
        self.time = time
        self.signature = signature
    }

    /// Keeps these signatures from meaning anything else the key signs (audit heads included).
    public static let domain = Array("MominAI bucket tree head v1\u{0}".utf8)

    /// domain ‖ string namespace ‖ u64 sequence ‖ u64 tree size ‖ 32-byte root ‖ u64 time.
    public var signedBytes: [UInt8] {
        treeHeadBytes(domain: Self.domain, scope: namespace, sequence: sequence, treeSize: treeSize, root: root, time: time)
    }

    static func sign(namespace: String, sequence: UInt64, treeSize: UInt64, root: MerkleHash, time: UInt64,
                     key: AuditKey) throws(BucketError) -> BucketHead {
        var head = BucketHead(namespace: namespace, sequence: sequence, treeSize: treeSize, root: root, time: time, signature: [])
        do { head.signature = try key.sign(head.signedBytes) } catch { throw .key(error.description) }
        return head
    }
}

/// An entry, the signed head of its namespace, and PATH(index, D[treeSize]) (RFC 6962 §2.1.1).
public struct BucketProof: Hashable, Sendable {
    public var entry: BucketEntry
    public var head: BucketHead
    public var path: [MerkleHash]

    public init(entry: BucketEntry, head: BucketHead, path: [MerkleHash]) {
        self.entry = entry
        self.head = head
        self.path = path
    }

    /// Checks the head's signature and that the entry, as it stands, is leaf `entry.index` of
    /// the tree the head signs; with `value`, also that the value is the entry's content.
    public func verify(publicKey: AuditPublicKey, value: [UInt8]? = nil) throws(BucketError) {
        guard head.namespace == entry.namespace else {
            throw .proof("the head is for namespace \(head.namespace), the entry is in \(entry.namespace)")
        }
        guard head.isValid(for: publicKey) else { throw .proof("the head's signature does not verify with key \(publicKey)") }
        do {
            try Merkle.verifyInclusion(leafHash: entry.leafHash, index: entry.index, treeSize: head.treeSize, proof: path, root: head.root)
        } catch {
            throw .proof("\(error)")
        }
        if let value {
            guard UInt64(value.count) == entry.size, BucketEntry.contentHash(of: value) == entry.contentHash else {
                throw .proof("the value is not the entry's content (sha256 \(entry.contentHash.hex))")
            }
        }
    }
}
