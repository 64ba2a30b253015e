import Merkle
import SignedLog

/// A signed statement that the first `treeSize` entries of log `logID` have Merkle root `root`
/// (the signed tree head of RFC 6962 §3.5, with our own byte layout).
public struct SignedTreeHead: SignedHead {
    /// The log the head belongs to; signed, so a head of one log is no head of another.
    public var logID: LogID
    /// 0, 1, 2, ... in the order the heads were signed; signed too, so a deleted head shows.
    public var sequence: UInt64
    public var treeSize: UInt64
    public var root: MerkleHash
    /// Nanoseconds since the Unix epoch.
    public var time: UInt64
    /// Ed25519 over `signedBytes`, 64 bytes.
    public var signature: [UInt8]

    public init(logID: LogID, sequence: UInt64, treeSize: UInt64, root: MerkleHash, time: UInt64, signature: [UInt8]) {
        self.logID = logID
        self.sequence = sequence
        self.treeSize = treeSize
        self.root = root
        self.time = time
        self.signature = signature
    }

    /// Keeps these signatures from being valid for anything else the key might sign. v2 added
    /// the log's identity (schema version 2).
    public static let domain = Array("MominAI audit tree head v2\u{0}".utf8)

    /// domain ‖ 16-byte log id ‖ u64 sequence ‖ u64 tree size ‖ 32-byte root ‖ u64 time, integers big-endian.
    public static func signedBytes(logID: LogID, sequence: UInt64, treeSize: UInt64, root: MerkleHash, time: UInt64) -> [UInt8] {
        treeHeadBytes(domain: domain, identity: logID.bytes, sequence: sequence, treeSize: treeSize, root: root, time: time)
    }

    public var signedBytes: [UInt8] {
        Self.signedBytes(logID: logID, sequence: sequence, treeSize: treeSize, root: root, time: time)
    }

    /// Makes the heads of the log `logID` from its rows.
    static func maker(_ logID: LogID) -> MakeHead<SignedTreeHead> {
        { SignedTreeHead(logID: logID, sequence: $0, treeSize: $1, root: $2, time: $3, signature: $4) }
    }

    static func sign(logID: LogID, sequence: UInt64, treeSize: UInt64, root: MerkleHash, time: UInt64,
                     key: AuditKey) throws(AuditError) -> SignedTreeHead {
        let signature = try key.sign(signedBytes(logID: logID, sequence: sequence, treeSize: treeSize, root: root, time: time))
        return SignedTreeHead(logID: logID, sequence: sequence, treeSize: treeSize, root: root, time: time, signature: signature)
    }
}
