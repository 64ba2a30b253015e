import Crypto

/// RFC 6962 §2.1 Merkle Tree Hash (the tree of Certificate Transparency, kept as RFC 9162 §2.1):
/// MTH({}) = SHA-256(), MTH({d}) = SHA-256(0x00 ‖ d), and for n > 1 with k the largest power of
/// two below n, MTH(D[n]) = SHA-256(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n])). The two prefixes keep a
/// leaf from ever being read as an inner node (second-preimage resistance).
public enum Merkle {
    /// MTH of the empty list: SHA-256 of nothing (e3b0c442…b855).
    public static let emptyRoot = MerkleHash(SHA256.hash(data: [UInt8]()))

    /// SHA-256(0x00 ‖ data), the hash of one leaf.
    public static func leafHash(_ data: some Collection<UInt8>) -> MerkleHash {
        var hasher = SHA256()
        feed(&hasher, 0x00)
        let fed: Void? = data.withContiguousStorageIfAvailable { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        if fed == nil { Array(data).withUnsafeBytes { hasher.update(bufferPointer: $0) } }
        return MerkleHash(hasher.finalize())
    }

    /// SHA-256(0x01 ‖ left ‖ right), the hash of an inner node.
    public static func nodeHash(_ left: MerkleHash, _ right: MerkleHash) -> MerkleHash {
        var hasher = SHA256()
        feed(&hasher, 0x01)
        left.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        right.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return MerkleHash(hasher.finalize())
    }

    private static func feed(_ hasher: inout SHA256, _ prefix: UInt8) {
        withUnsafeBytes(of: prefix) { hasher.update(bufferPointer: $0) }
    }

    /// MTH over raw leaf data.
    public static func root(ofLeaves leaves: [[UInt8]]) -> MerkleHash {
        root(leafHashes: leaves.map { leafHash($0) })
    }

    /// MTH of the leaves whose hashes are given, by the recursive definition of §2.1.
    public static func root(leafHashes: some RandomAccessCollection<MerkleHash>) -> MerkleHash {
        var frontier = MerkleFrontier()
        for hash in leafHashes { frontier.append(hash) }
        return frontier.root
    }

    /// The largest power of two strictly below n (n ≥ 2): the split point k of §2.1.
    static func split(_ n: Int) -> Int {
        precondition(n >= 2)
        return 1 << (Int.bitWidth - 1 - (n - 1).leadingZeroBitCount)
    }

    static func subtreeRoot(_ leaves: ArraySlice<MerkleHash>) -> MerkleHash {
        switch leaves.count {
        case 0: return emptyRoot
        case 1: return leaves[leaves.startIndex]
        default:
            let k = split(leaves.count)
            let middle = leaves.startIndex + k
            return nodeHash(subtreeRoot(leaves[..<middle]), subtreeRoot(leaves[middle...]))
        }
    }
}

/// The right edge of a Merkle tree: the roots of its perfect subtrees, largest (leftmost) first,
/// one per set bit of `size`. Enough to append a leaf and to compute the root, in O(log n)
/// hashes and memory, without the leaves (the "compact range" of a log).
public struct MerkleFrontier: Equatable, Sendable {
    public private(set) var size: UInt64
    public private(set) var hashes: [MerkleHash]

    public init() {
        size = 0
        hashes = []
        hashes.reserveCapacity(64)
    }

    /// A stored frontier; nil unless there is exactly one hash per set bit of `size`.
    public init?(size: UInt64, hashes: [MerkleHash]) {
        guard hashes.count == size.nonzeroBitCount else { return nil }
        self.size = size
        self.hashes = hashes
    }

    /// Appends a leaf: a new subtree of one, merged with its left neighbours of equal size
    /// (one merge per trailing 1 bit of the old size).
    public mutating func append(_ leafHash: MerkleHash) {
        var node = leafHash
        var carries = size
        while carries & 1 == 1 {
            node = Merkle.nodeHash(hashes.removeLast(), node)
            carries >>= 1
        }
        hashes.append(node)
        size += 1
    }

    /// MTH of the leaves appended so far: the subtrees folded right to left (§2.1 splits at
    /// the largest power of two, which is exactly the leftmost subtree).
    public var root: MerkleHash {
        guard var node = hashes.last else { return Merkle.emptyRoot }
        for left in hashes.dropLast().reversed() { node = Merkle.nodeHash(left, node) }
        return node
    }

    /// The hashes end to end, 32 bytes each.
    public var serialized: [UInt8] { hashes.flatMap(\.bytes) }

    /// Parses `serialized` for a tree of `size` leaves; nil if its length does not fit.
    public init?(size: UInt64, serialized: [UInt8]) {
        guard serialized.count == size.nonzeroBitCount * MerkleHash.byteCount else { return nil }
        var hashes: [MerkleHash] = []
        var offset = 0
        while offset < serialized.count {
            guard let hash = MerkleHash(bytes: serialized[offset..<offset + MerkleHash.byteCount]) else { return nil }
            hashes.append(hash)
            offset += MerkleHash.byteCount
        }
        self.init(size: size, hashes: hashes)
    }
}
