/// Why a proof was rejected. Each case names what did not fit.
public enum ProofError: Error, Equatable, Sendable, CustomStringConvertible {
    /// An inclusion proof for a leaf the tree does not have.
    case indexOutOfRange(index: UInt64, treeSize: UInt64)
    /// A consistency proof from a larger tree to a smaller one.
    case sizesOutOfOrder(oldSize: UInt64, newSize: UInt64)
    /// The proof has more or fewer nodes than the sizes (and index) call for.
    case wrongLength(expected: Int, actual: Int)
    /// The proof leads to another root than the one given for the (new) tree.
    case rootMismatch(expected: MerkleHash, computed: MerkleHash)
    /// A consistency proof leads to another root than the one given for the old tree.
    case oldRootMismatch(expected: MerkleHash, computed: MerkleHash)

    public var description: String {
        switch self {
        case .indexOutOfRange(let index, let size): "leaf index \(index) is outside a tree of \(size) leaves"
        case .sizesOutOfOrder(let old, let new): "old tree size \(old) is larger than new tree size \(new)"
        case .wrongLength(let expected, let actual): "proof has \(actual) nodes, \(expected) expected"
        case .rootMismatch(let expected, let computed): "proof leads to root \(computed), not \(expected)"
        case .oldRootMismatch(let expected, let computed): "proof leads to old root \(computed), not \(expected)"
        }
    }
}

extension Merkle {
    // MARK: Generation (RFC 6962 §2.1.1 and §2.1.2)

    /// PATH(m, D[n]), RFC 6962 §2.1.1: the siblings on the way from leaf m up to the root,
    /// nearest first. PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) if m < k,
    /// else PATH(m - k, D[k:n]) : MTH(D[0:k]).
    public static func inclusionProof(index: Int, leafHashes: [MerkleHash]) throws(ProofError) -> [MerkleHash] {
        guard index >= 0, index < leafHashes.count else {
            throw .indexOutOfRange(index: UInt64(max(index, 0)), treeSize: UInt64(leafHashes.count))
        }
        var proof: [MerkleHash] = []
        path(index, leafHashes[...], into: &proof)
        return proof
    }

    private static func path(_ m: Int, _ leaves: ArraySlice<MerkleHash>, into proof: inout [MerkleHash]) {
        guard leaves.count > 1 else { return }
        let middle = leaves.startIndex + split(leaves.count)
        if m < middle - leaves.startIndex {
            path(m, leaves[..<middle], into: &proof)
            proof.append(subtreeRoot(leaves[middle...]))
        } else {
            path(m - (middle - leaves.startIndex), leaves[middle...], into: &proof)
            proof.append(subtreeRoot(leaves[..<middle]))
        }
    }

    /// PROOF(m, D[n]), RFC 6962 §2.1.2: the nodes that show the first m leaves of D[n] are the
    /// tree of size m. Empty for m = 0 and m = n.
    public static func consistencyProof(oldSize: Int, leafHashes: [MerkleHash]) throws(ProofError) -> [MerkleHash] {
        guard oldSize >= 0, oldSize <= leafHashes.count else {
            throw .sizesOutOfOrder(oldSize: UInt64(max(oldSize, 0)), newSize: UInt64(leafHashes.count))
        }
        var proof: [MerkleHash] = []
        if oldSize > 0, oldSize < leafHashes.count { subproof(oldSize, leafHashes[...], whole: true, into: &proof) }
        return proof
    }

    /// SUBPROOF(m, D[n], b): `whole` is b, true while D[n] is the subtree that the old tree's
    /// root is known for, so its own hash need not be sent.
    private static func subproof(_ m: Int, _ leaves: ArraySlice<MerkleHash>, whole: Bool, into proof: inout [MerkleHash]) {
        let n = leaves.count
        if m == n {
            if !whole { proof.append(subtreeRoot(leaves)) }
            return
        }
        let k = split(n)
        let middle = leaves.startIndex + k
        if m <= k {
            subproof(m, leaves[..<middle], whole: whole, into: &proof)
            proof.append(subtreeRoot(leaves[middle...]))
        } else {
            subproof(m - k, leaves[middle...], whole: false, into: &proof)
            proof.append(subtreeRoot(leaves[..<middle]))
        }
    }

    // MARK: Sizes

    /// How many nodes PATH(index, D[size]) has: one per level where the leaf's subtree has a
    /// sibling, that is, the levels below the point where index and size - 1 part ("inner"),
    /// plus one per left subtree on the tree's right border above it.
    public static func inclusionProofLength(index: UInt64, treeSize: UInt64) -> Int {
        precondition(index < treeSize)
        let inner = UInt64.bitWidth - (index ^ (treeSize - 1)).leadingZeroBitCount
        return inner + (index >> UInt64(inner)).nonzeroBitCount
    }

    /// How many nodes PROOF(old, D[new]) has for 0 < old < new: the inclusion path of the old
    /// tree's last leaf, less the levels of the perfect subtree that ends there, plus that
    /// subtree's root unless it is the whole old tree (old a power of two).
    public static func consistencyProofLength(oldSize: UInt64, newSize: UInt64) -> Int {
        precondition(oldSize > 0 && oldSize < newSize)
        let shift = oldSize.trailingZeroBitCount
        let inner = UInt64.bitWidth - ((oldSize - 1) ^ (newSize - 1)).leadingZeroBitCount
        let border = ((oldSize - 1) >> UInt64(inner)).nonzeroBitCount
        let seed = oldSize == 1 << UInt64(shift) ? 0 : 1
        return seed + inner - shift + border
    }

    // MARK: Verification (RFC 9162 §2.1.3.2 and §2.1.4.2)

    /// Checks that `leafHash` is leaf `index` of the tree of `treeSize` leaves whose root is `root`.
    public static func verifyInclusion(
        leafHash: MerkleHash, index: UInt64, treeSize: UInt64, proof: [MerkleHash], root: MerkleHash
    ) throws(ProofError) {
        let computed = try rootFromInclusionProof(leafHash: leafHash, index: index, treeSize: treeSize, proof: proof)
        guard computed == root else { throw .rootMismatch(expected: root, computed: computed) }
    }

    /// The root that an inclusion proof leads to, by RFC 9162 §2.1.3.2: fn walks the leaf's
    /// position up the tree and sn the last leaf's; where fn is a right child (or the last node
    /// of its level, whose levels without a sibling are skipped) the proof node is on the left.
    public static func rootFromInclusionProof(
        leafHash: MerkleHash, index: UInt64, treeSize: UInt64, proof: [MerkleHash]
    ) throws(ProofError) -> MerkleHash {
        guard index < treeSize else { throw .indexOutOfRange(index: index, treeSize: treeSize) }
        let expected = inclusionProofLength(index: index, treeSize: treeSize)
        guard proof.count == expected else { throw .wrongLength(expected: expected, actual: proof.count) }
        var fn = index
        var sn = treeSize - 1
        var node = leafHash
        for sibling in proof {
            guard sn != 0 else { throw .wrongLength(expected: expected, actual: proof.count) }
            if fn & 1 == 1 || fn == sn {
                node = nodeHash(sibling, node)
                while fn & 1 == 0 && fn != 0 {
                    fn >>= 1
                    sn >>= 1
                }
            } else {
                node = nodeHash(node, sibling)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else { throw .wrongLength(expected: expected, actual: proof.count) }
        return node
    }

    /// Checks that the tree of `oldSize` leaves with root `oldRoot` is a prefix of the tree of
    /// `newSize` leaves with root `newRoot`. Equal sizes need equal roots and an empty proof;
    /// the empty tree (root SHA-256()) is a prefix of every tree, with an empty proof.
    public static func verifyConsistency(
        oldSize: UInt64, newSize: UInt64, oldRoot: MerkleHash, newRoot: MerkleHash, proof: [MerkleHash]
    ) throws(ProofError) {
        guard oldSize <= newSize else { throw .sizesOutOfOrder(oldSize: oldSize, newSize: newSize) }
        if oldSize == 0 || oldSize == newSize {
            guard proof.isEmpty else { throw .wrongLength(expected: 0, actual: proof.count) }
            let expectedOld = oldSize == 0 ? emptyRoot : newRoot
            guard oldRoot == expectedOld else { throw .oldRootMismatch(expected: oldRoot, computed: expectedOld) }
            return
        }
        let expected = consistencyProofLength(oldSize: oldSize, newSize: newSize)
        guard proof.count == expected else { throw .wrongLength(expected: expected, actual: proof.count) }

        // RFC 9162 §2.1.4.2. If the old tree is a perfect subtree, its root is the first node.
        var path = proof
        if oldSize & (oldSize - 1) == 0 { path.insert(oldRoot, at: 0) }
        var fn = oldSize - 1
        var sn = newSize - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var oldNode = path[0]
        var newNode = path[0]
        for node in path.dropFirst() {
            guard sn != 0 else { throw .wrongLength(expected: expected, actual: proof.count) }
            if fn & 1 == 1 || fn == sn {
                oldNode = nodeHash(node, oldNode)
                newNode = nodeHash(node, newNode)
                while fn & 1 == 0 && fn != 0 {
                    fn >>= 1
                    sn >>= 1
                }
            } else {
                newNode = nodeHash(newNode, node)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else { throw .wrongLength(expected: expected, actual: proof.count) }
        guard oldNode == oldRoot else { throw .oldRootMismatch(expected: oldRoot, computed: oldNode) }
        guard newNode == newRoot else { throw .rootMismatch(expected: newRoot, computed: newNode) }
    }
}
