import Merkle
import SignedLog

/// A signed statement that the log's first `treeSize` entries have Merkle root `root`
/// (the signed tree head of RFC 6962 §3.5, with our own byte layout).
public struct SignedTreeHead: SignedHead {
    /// 0, 1, 2, ... in the order the heads were signed; signed too, so a deleted head shows.
    public var sequence: UInt64
    public var treeSize: UInt64
    public var root: MerkleHash
    /// Nanoseconds since the Unix epoch.
    public var time: UInt64
    /// Ed25519 over `signedBytes`, 64 bytes.
    public var signature: [UInt8]

    public init(sequence: UInt64, treeSize: UInt64, root: MerkleHash, time: UInt64, signature: [UInt8]) {
        self.sequence = sequence
        self.treeSize = treeSize
        self.root = root
        self.time = time
        self.signature = signature
    }

    /// Keeps these signatures from being valid for anything else the key might sign.
    public static let domain = Array("MominAI audit tree head v1\u{0}".utf8)

    /// domain ‖ u64 sequence ‖ u64 tree size ‖ 32-byte root ‖ u64 time, integers big-endian.
    public static func signedBytes(sequence: UInt64, treeSize: UInt64, root: MerkleHash, time: UInt64) -> [UInt8] {
        treeHeadBytes(domain: domain, sequence: sequence, treeSize: treeSize, root: root, time: time)
    }

    public var signedBytes: [UInt8] { Self.signedBytes(sequence: sequence, treeSize: treeSize, root: root, time: time) }

    static func sign(sequence: UInt64, treeSize: UInt64, root: MerkleHash, time: UInt64, key: AuditKey) throws(AuditError) -> SignedTreeHead {
        let signature = try key.sign(signedBytes(sequence: sequence, treeSize: treeSize, root: root, time: time))
        return SignedTreeHead(sequence: sequence, treeSize: treeSize, root: root, time: time, signature: signature)
    }
}
