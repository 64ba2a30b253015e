import Crypto
import Merkle

/// SHA-256 over a call's output as it streams by, each chunk preceded by its stream's number
/// (1 stdout, 2 stderr) so bytes moved from one stream to the other change the digest.
public struct ResultHasher {
    private var hasher = SHA256()
    public private(set) var byteCount: UInt64 = 0

    public init() {}

    public mutating func add(stream: UInt8, _ chunk: [UInt8]) {
        hasher.update(data: [stream])
        hasher.update(data: chunk)
        byteCount += UInt64(chunk.count)
    }

    public var digest: MerkleHash { MerkleHash(bytes: Array(hasher.finalize()))! }
}
