import GRDB
import Merkle

/// A public key that checks tree head signatures (the audit key type's public half).
public protocol HeadKey: CustomStringConvertible {
    func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool
}

/// A signed statement that a log's first `treeSize` entries have Merkle root `root` (the signed
/// tree head of RFC 6962 §3.5). Each log type has its own head, with its own signing domain.
public protocol SignedHead: Hashable, Sendable {
    /// 0, 1, 2, ... in the order the heads were signed; signed too, so a deleted head shows.
    var sequence: UInt64 { get }
    var treeSize: UInt64 { get }
    var root: MerkleHash { get }
    /// Nanoseconds since the Unix epoch.
    var time: UInt64 { get }
    /// Ed25519 over `signedBytes`, 64 bytes.
    var signature: [UInt8] { get }
    var signedBytes: [UInt8] { get }
}

extension SignedHead {
    public func isValid(for key: some HeadKey) -> Bool { key.isValidSignature(signature, for: signedBytes) }
}

/// The bytes a tree head signature covers: domain ‖ identity ‖ [string scope] ‖ u64 sequence ‖
/// u64 tree size ‖ 32-byte root ‖ u64 time, integers big-endian. The domain keeps one log type's
/// signatures from meaning anything for another's; the identity (fixed-length raw bytes, empty
/// where the log type has none) names the log file, so a head of one log is no head of another
/// under the same key; the scope names the tree when a file holds several.
package func treeHeadBytes(domain: [UInt8], identity: [UInt8] = [], scope: String? = nil, sequence: UInt64, treeSize: UInt64,
                           root: MerkleHash, time: UInt64) -> [UInt8] {
    var out = LeafWriter()
    out.bytes.append(contentsOf: domain)
    out.bytes.append(contentsOf: identity)
    if let scope { out.string(scope) }
    out.u64(sequence)
    out.u64(treeSize)
    out.digest(root)
    out.u64(time)
    return out.bytes
}

/// The fields of a heads row, in the order of `LogRows.headColumns`, before they become a head.
package typealias MakeHead<Head> = (_ sequence: UInt64, _ treeSize: UInt64, _ root: MerkleHash, _ time: UInt64,
                                    _ signature: [UInt8]) -> Head

/// A row of a heads table (columns seq, tree_size, root_hash, time, signature, frontier), read
/// without trusting it.
package struct StoredHead<Head: SignedHead> {
    /// The row's sequence number; its position among the heads when that is unreadable.
    package var sequence: UInt64
    package var head: Head?
    package var frontier: [UInt8] = []
    /// Why `head` is nil.
    package var problem: String?

    package var place: LogFinding.Place { .head(sequence: sequence, treeSize: head?.treeSize) }

    package init(_ row: Row, position: UInt64, make: MakeHead<Head>) {
        let values = (0..<6).map { row[$0] as DatabaseValue }
        guard case .int64(let sequence) = values[0].storage, sequence >= 0 else {
            self.sequence = position
            problem = "its sequence number is \(values[0])"
            return
        }
        self.sequence = UInt64(sequence)
        guard case .int64(let size) = values[1].storage, size >= 0 else { problem = "its tree size is \(values[1])"; return }
        guard case .blob(let root) = values[2].storage, let rootHash = MerkleHash(bytes: root) else {
            problem = "its root is not 32 bytes"
            return
        }
        guard case .int64(let time) = values[3].storage else { problem = "its time is \(values[3])"; return }
        guard case .blob(let signature) = values[4].storage, signature.count == 64 else {
            problem = "its signature is not 64 bytes"
            return
        }
        if case .blob(let frontier) = values[5].storage { self.frontier = Array(frontier) }
        head = make(UInt64(sequence), UInt64(size), rootHash, UInt64(bitPattern: time), Array(signature))
    }

    /// The head, or the finding that it is malformed.
    package func checked() -> Result<Head, LogFinding> {
        if let head { return .success(head) }
        return .failure(LogFinding(place: place, kind: .forgedHead, detail: problem ?? "malformed"))
    }
}

/// A writer's view of one tree: its right edge and the last head signed over it.
package struct LogTip<Head: SignedHead>: Sendable {
    package var frontier = MerkleFrontier()
    package var lastHead: Head?

    package init() {}

    package var signedSize: UInt64 { lastHead?.treeSize ?? 0 }
    package var nextSequence: UInt64 { lastHead.map { $0.sequence + 1 } ?? 0 }
    /// Entries appended since the last head.
    package var unsigned: UInt64 { frontier.size - signedSize }
}

/// Canonical big-endian field writer: the leaf encodings of audit records and bucket entries,
/// and the bytes a tree head signs.
package struct LeafWriter {
    /// Bound on one string or byte field, so a hostile row cannot make a decoder allocate much.
    package static let maximumFieldLength = 16 << 20

    package var bytes: [UInt8] = []
    /// The length of the first field that was too long to write.
    package var oversized: Int?

    package init() { bytes.reserveCapacity(128) }

    package mutating func u8(_ value: UInt8) { bytes.append(value) }

    package mutating func u64(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    package mutating func bytes(_ value: some Collection<UInt8>) {
        guard value.count <= Self.maximumFieldLength else {
            oversized = oversized ?? value.count
            return
        }
        let count = UInt32(value.count)
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: count >> UInt32(shift))) }
        bytes.append(contentsOf: value)
    }

    package mutating func string(_ value: String) { bytes(value.utf8) }

    package mutating func digest(_ value: MerkleHash) { value.withUnsafeBytes { bytes.append(contentsOf: $0) } }
}
