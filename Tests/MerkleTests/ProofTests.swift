import Merkle
import Testing

/// Leaves "leaf 0", "leaf 1", ...: every tree size up to `maxSize` is a prefix of them.
let maxSize = 64
let sampleLeafHashes = (0..<maxSize).map { Merkle.leafHash(Array("leaf \($0)".utf8)) }
let sampleRoots = (0...maxSize).map { Merkle.root(leafHashes: sampleLeafHashes.prefix($0)) }

func flipped(_ hash: MerkleHash, bit: Int) -> MerkleHash {
    var bytes = hash.bytes
    bytes[bit / 8] ^= 1 << UInt8(bit % 8)
    return MerkleHash(bytes: bytes)!
}

let stranger = Merkle.leafHash(Array("not in the tree".utf8))

/// True if verification throws.
func rejectsInclusion(_ leaf: MerkleHash, _ index: Int, _ size: Int, _ proof: [MerkleHash], _ root: MerkleHash) -> Bool {
    do {
        try Merkle.verifyInclusion(leafHash: leaf, index: UInt64(index), treeSize: UInt64(size), proof: proof, root: root)
        return false
    } catch {
        return true
    }
}

func rejectsConsistency(_ old: Int, _ new: Int, _ oldRoot: MerkleHash, _ newRoot: MerkleHash, _ proof: [MerkleHash]) -> Bool {
    do {
        try Merkle.verifyConsistency(oldSize: UInt64(old), newSize: UInt64(new), oldRoot: oldRoot, newRoot: newRoot, proof: proof)
        return false
    } catch {
        return true
    }
}

@Suite struct ProofTests {
    @Test func recursiveRootAndFrontierAgreeUpTo200Leaves() {
        let leaves = (0..<200).map { Merkle.leafHash(Array("x\($0 * 7919)".utf8)) }
        var frontier = MerkleFrontier()
        for n in 0...200 {
            #expect(frontier.root == reference(leaves[..<n]), "size \(n)")
            #expect(frontier.hashes.count == n.nonzeroBitCount)
            if n < 200 { frontier.append(leaves[n]) }
        }
    }

    /// MTH straight from RFC 6962 §2.1's recursion, written independently of the library.
    func reference(_ leaves: ArraySlice<MerkleHash>) -> MerkleHash {
        if leaves.isEmpty { return Merkle.emptyRoot }
        if leaves.count == 1 { return leaves.first! }
        var k = 1
        while k * 2 < leaves.count { k *= 2 }
        let middle = leaves.startIndex + k
        return Merkle.nodeHash(reference(leaves[..<middle]), reference(leaves[middle...]))
    }

    @Test func frontierSurvivesSerialization() throws {
        var frontier = MerkleFrontier()
        for size in 0..<maxSize {
            let copy = try #require(MerkleFrontier(size: frontier.size, serialized: frontier.serialized))
            #expect(copy == frontier)
            #expect(copy.root == sampleRoots[size])
            // One hash too many or too few, or a cut hash, is refused.
            #expect(MerkleFrontier(size: frontier.size, serialized: frontier.serialized + [UInt8](repeating: 0, count: 32)) == nil)
            #expect(MerkleFrontier(size: frontier.size + 1, serialized: frontier.serialized) == nil || (size + 1).nonzeroBitCount == size.nonzeroBitCount)
            if !frontier.serialized.isEmpty {
                #expect(MerkleFrontier(size: frontier.size, serialized: Array(frontier.serialized.dropLast())) == nil)
            }
            frontier.append(sampleLeafHashes[size])
        }
    }

    @Test func everyInclusionProofUpTo64LeavesVerifiesAndHasThePredictedLength() throws {
        for size in 1...maxSize {
            let leaves = Array(sampleLeafHashes.prefix(size))
            for index in 0..<size {
                let proof = try Merkle.inclusionProof(index: index, leafHashes: leaves)
                #expect(proof.count == Merkle.inclusionProofLength(index: UInt64(index), treeSize: UInt64(size)))
                try Merkle.verifyInclusion(leafHash: leaves[index], index: UInt64(index), treeSize: UInt64(size),
                                           proof: proof, root: sampleRoots[size])
            }
        }
    }

    @Test func everyMutatedInclusionProofIsRejected() throws {
        var checked = 0
        for size in 1...maxSize {
            let leaves = Array(sampleLeafHashes.prefix(size))
            let root = sampleRoots[size]
            for index in 0..<size {
                let proof = try Merkle.inclusionProof(index: index, leafHashes: leaves)
                let leaf = leaves[index]
                func reject(_ what: String, leaf: MerkleHash = leaf, index: Int = index, size: Int = size,
                            proof: [MerkleHash] = proof, root: MerkleHash = root) {
                    #expect(rejectsInclusion(leaf, index, size, proof, root), "leaf \(index) of \(size): \(what)")
                    checked += 1
                }
                // A flipped bit anywhere in any node.
                for (position, node) in proof.enumerated() {
                    for bit in [0, 7, 100, 255] {
                        var bad = proof
                        bad[position] = flipped(node, bit: bit)
                        reject("node \(position) bit \(bit) flipped", proof: bad)
                    }
                }
                // Truncated, missing a middle node, extra nodes at either end, nodes swapped.
                if !proof.isEmpty {
                    reject("last node dropped", proof: Array(proof.dropLast()))
                    reject("first node dropped", proof: Array(proof.dropFirst()))
                    var missing = proof
                    missing.remove(at: proof.count / 2)
                    reject("middle node missing", proof: missing)
                }
                reject("extra node at the end", proof: proof + [stranger])
                reject("root appended", proof: proof + [root])
                reject("extra node in front", proof: [stranger] + proof)
                if proof.count > 1, proof[0] != proof[1] { reject("nodes swapped", proof: [proof[1], proof[0]] + proof.dropFirst(2)) }
                // Wrong index: the same leaf and proof claimed at another position, or another leaf.
                for other in [index - 1, index + 1, index ^ 2, size] where other >= 0 && other != index {
                    reject("claimed at index \(other)", index: other)
                    if other < size { reject("leaf \(other) with this proof", leaf: leaves[other]) }
                }
                reject("a leaf not in the tree", leaf: stranger)
                // Wrong size, against the real root of a tree of that size where there is one.
                for other in [size - 1, size + 1, size * 2, size / 2] where other != size && other > index {
                    reject("claimed for size \(other)", size: other, root: other <= maxSize ? sampleRoots[other] : root)
                }
                // Wrong root: flipped, another tree's, the empty tree's.
                reject("root bit flipped", root: flipped(root, bit: 3))
                reject("the empty root", root: Merkle.emptyRoot)
                if size > 1 { reject("the root of one leaf less", root: sampleRoots[size - 1]) }
            }
        }
        #expect(checked > 20_000)
    }

    @Test func inclusionErrorsNameWhatIsWrong() throws {
        let leaves = Array(sampleLeafHashes.prefix(8))
        let proof = try Merkle.inclusionProof(index: 3, leafHashes: leaves)
        #expect(throws: ProofError.indexOutOfRange(index: 8, treeSize: 8)) {
            try Merkle.verifyInclusion(leafHash: leaves[3], index: 8, treeSize: 8, proof: proof, root: sampleRoots[8])
        }
        #expect(throws: ProofError.wrongLength(expected: 3, actual: 4)) {
            try Merkle.verifyInclusion(leafHash: leaves[3], index: 3, treeSize: 8, proof: proof + [stranger], root: sampleRoots[8])
        }
        let wrongRoot = flipped(sampleRoots[8], bit: 9)
        #expect(throws: ProofError.rootMismatch(expected: wrongRoot, computed: sampleRoots[8])) {
            try Merkle.verifyInclusion(leafHash: leaves[3], index: 3, treeSize: 8, proof: proof, root: wrongRoot)
        }
        #expect(throws: ProofError.indexOutOfRange(index: 0, treeSize: 0)) {
            try Merkle.verifyInclusion(leafHash: leaves[0], index: 0, treeSize: 0, proof: [], root: Merkle.emptyRoot)
        }
        #expect(throws: ProofError.indexOutOfRange(index: 8, treeSize: 8)) {
            try Merkle.inclusionProof(index: 8, leafHashes: leaves)
        }
    }

    @Test func everyConsistencyProofUpTo64LeavesVerifiesAndHasThePredictedLength() throws {
        for new in 0...maxSize {
            let leaves = Array(sampleLeafHashes.prefix(new))
            for old in 0...new {
                let proof = try Merkle.consistencyProof(oldSize: old, leafHashes: leaves)
                if old > 0, old < new {
                    #expect(proof.count == Merkle.consistencyProofLength(oldSize: UInt64(old), newSize: UInt64(new)))
                } else {
                    #expect(proof.isEmpty)
                }
                try Merkle.verifyConsistency(oldSize: UInt64(old), newSize: UInt64(new),
                                             oldRoot: sampleRoots[old], newRoot: sampleRoots[new], proof: proof)
            }
        }
    }

    @Test func everyMutatedConsistencyProofIsRejected() throws {
        var checked = 0
        for new in 1...maxSize {
            let leaves = Array(sampleLeafHashes.prefix(new))
            for old in 0...new {
                let proof = try Merkle.consistencyProof(oldSize: old, leafHashes: leaves)
                let oldRoot = sampleRoots[old], newRoot = sampleRoots[new]
                func reject(_ what: String, old: Int = old, new: Int = new, oldRoot: MerkleHash = oldRoot,
                            newRoot: MerkleHash = newRoot, proof: [MerkleHash] = proof) {
                    #expect(rejectsConsistency(old, new, oldRoot, newRoot, proof), "\(old) → \(new): \(what)")
                    checked += 1
                }
                for (position, node) in proof.enumerated() {
                    for bit in [0, 4, 130, 255] {
                        var bad = proof
                        bad[position] = flipped(node, bit: bit)
                        reject("node \(position) bit \(bit) flipped", proof: bad)
                    }
                }
                if !proof.isEmpty {
                    reject("empty proof", proof: [])
                    reject("last node dropped", proof: Array(proof.dropLast()))
                    reject("first node dropped", proof: Array(proof.dropFirst()))
                    reject("first node repeated in front", proof: [proof[0]] + proof)
                }
                reject("extra node at the end", proof: proof + [stranger])
                reject("old root appended", proof: proof + [oldRoot])
                reject("new root appended", proof: proof + [newRoot])
                reject("extra node in front", proof: [stranger] + proof)
                // Wrong sizes, each with the real root of a tree of that size where there is one.
                reject("old root bit flipped", oldRoot: flipped(oldRoot, bit: 17))
                // The empty tree is a prefix of every tree: only its root and the proof can be wrong.
                guard old > 0 else { continue }
                // Wrong sizes, each with the real root of a tree of that size. (A proof with the
                // roots kept may well be valid for trees of another size, whose leaves nobody has.)
                for other in [old - 1, old + 1, old ^ 2] where other > 0 && other != old && other <= new {
                    reject("old size \(other)", old: other, oldRoot: sampleRoots[other])
                }
                for other in [new - 1, new + 1, new * 2, new / 2] where other >= old && other != new && other <= maxSize {
                    reject("new size \(other)", new: other, newRoot: sampleRoots[other])
                }
                // Wrong roots.
                reject("new root bit flipped", newRoot: flipped(newRoot, bit: 200))
                if old != new { reject("roots swapped", oldRoot: newRoot, newRoot: oldRoot) }
                reject("a stranger as new root", newRoot: stranger)
            }
        }
        // Going back in time is never consistent.
        #expect(rejectsConsistency(5, 4, sampleRoots[5], sampleRoots[4], []))
        #expect(rejectsConsistency(1, 0, sampleRoots[1], sampleRoots[0], []))
        #expect(checked > 15_000)
    }

    @Test func consistencyErrorsNameWhatIsWrong() throws {
        let leaves = Array(sampleLeafHashes.prefix(7))
        let proof = try Merkle.consistencyProof(oldSize: 3, leafHashes: leaves)
        #expect(throws: ProofError.sizesOutOfOrder(oldSize: 8, newSize: 7)) {
            try Merkle.verifyConsistency(oldSize: 8, newSize: 7, oldRoot: sampleRoots[8], newRoot: sampleRoots[7], proof: proof)
        }
        #expect(throws: ProofError.wrongLength(expected: proof.count, actual: proof.count - 1)) {
            try Merkle.verifyConsistency(oldSize: 3, newSize: 7, oldRoot: sampleRoots[3], newRoot: sampleRoots[7],
                                         proof: Array(proof.dropLast()))
        }
        #expect(throws: ProofError.wrongLength(expected: 0, actual: 1)) {
            try Merkle.verifyConsistency(oldSize: 7, newSize: 7, oldRoot: sampleRoots[7], newRoot: sampleRoots[7], proof: [stranger])
        }
        let wrongOld = flipped(sampleRoots[3], bit: 1)
        #expect(throws: ProofError.oldRootMismatch(expected: wrongOld, computed: sampleRoots[3])) {
            try Merkle.verifyConsistency(oldSize: 3, newSize: 7, oldRoot: wrongOld, newRoot: sampleRoots[7], proof: proof)
        }
        #expect(throws: ProofError.rootMismatch(expected: stranger, computed: sampleRoots[7])) {
            try Merkle.verifyConsistency(oldSize: 3, newSize: 7, oldRoot: sampleRoots[3], newRoot: stranger, proof: proof)
        }
        // The empty tree has one root, and no tree is consistent with an older, larger one.
        #expect(throws: ProofError.self) {
            try Merkle.verifyConsistency(oldSize: 0, newSize: 7, oldRoot: stranger, newRoot: sampleRoots[7], proof: [])
        }
        #expect(throws: ProofError.sizesOutOfOrder(oldSize: 8, newSize: 7)) {
            try Merkle.consistencyProof(oldSize: 8, leafHashes: leaves)
        }
    }
}
