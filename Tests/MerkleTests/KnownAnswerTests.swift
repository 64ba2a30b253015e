import Merkle
import Testing

/// The RFC 6962 test tree used across Certificate Transparency implementations: eight leaves of
/// 0, 1, 1, 2, 2, 4, 8 and 16 bytes, with the roots of every prefix and some proofs.
enum CTVectors {
    static let leaves: [[UInt8]] = [
        [], [0x00], [0x10], [0x20, 0x21], [0x30, 0x31], [0x40, 0x41, 0x42, 0x43],
        Array(0x50...0x57), Array(0x60...0x6f),
    ]
    /// roots[n - 1] is the root of the first n leaves.
    static let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ].map { hash($0) }

    struct Inclusion: Sendable, CustomTestStringConvertible {
        var index: Int, size: Int, proof: [MerkleHash]
        var testDescription: String { "leaf \(index) of \(size)" }
    }
    static let inclusions = [
        Inclusion(index: 0, size: 8, proof: [
            hash("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            hash("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            hash("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ]),
        Inclusion(index: 5, size: 8, proof: [
            hash("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            hash("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            hash("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ]),
        Inclusion(index: 2, size: 3, proof: [
            hash("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        ]),
        Inclusion(index: 1, size: 5, proof: [
            hash("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            hash("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            hash("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ]),
        Inclusion(index: 0, size: 1, proof: []),
    ]

    struct Consistency: Sendable, CustomTestStringConvertible {
        var old: Int, new: Int, proof: [MerkleHash]
        var testDescription: String { "\(old) → \(new)" }
    }
    static let consistencies = [
        Consistency(old: 1, new: 1, proof: []),
        Consistency(old: 1, new: 8, proof: [
            hash("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            hash("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            hash("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ]),
        Consistency(old: 6, new: 8, proof: [
            hash("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            hash("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            hash("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ]),
        Consistency(old: 2, new: 5, proof: [
            hash("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            hash("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ]),
        Consistency(old: 6, new: 7, proof: [
            hash("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            hash("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            hash("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ]),
    ]

    static var leafHashes: [MerkleHash] { leaves.map { Merkle.leafHash($0) } }
}

func hash(_ hex: String) -> MerkleHash {
    guard let hash = MerkleHash(hex: hex) else { fatalError("bad test vector \(hex)") }
    return hash
}

@Suite struct KnownAnswerTests {
    @Test func emptyTreeRootIsSHA256OfNothing() {
        #expect(Merkle.emptyRoot.hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Merkle.root(ofLeaves: []) == Merkle.emptyRoot)
        #expect(MerkleFrontier().root == Merkle.emptyRoot)
    }

    @Test func emptyLeafHashIsSHA256OfTheLeafPrefix() {
        #expect(Merkle.leafHash([UInt8]()).hex == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
        // A one-leaf tree's root is its leaf hash.
        #expect(Merkle.root(ofLeaves: [[]]) == Merkle.leafHash([UInt8]()))
    }

    @Test func nodeHashPrefixesOneAndConcatenates() {
        // RFC 6962 §2.1: SHA-256(0x01 ‖ left ‖ right); the 2-leaf root of the CT vectors.
        let root = Merkle.nodeHash(Merkle.leafHash(CTVectors.leaves[0]), Merkle.leafHash(CTVectors.leaves[1]))
        #expect(root == CTVectors.roots[1])
    }

    @Test(arguments: 1...8) func rootOfEveryPrefixOfTheEightLeaves(size: Int) {
        let leaves = Array(CTVectors.leaves.prefix(size))
        #expect(Merkle.root(ofLeaves: leaves) == CTVectors.roots[size - 1])
        var frontier = MerkleFrontier()
        for leaf in leaves { frontier.append(Merkle.leafHash(leaf)) }
        #expect(frontier.size == UInt64(size))
        #expect(frontier.root == CTVectors.roots[size - 1])
    }

    @Test(arguments: CTVectors.inclusions) func knownInclusionProofs(vector: CTVectors.Inclusion) throws {
        let leafHashes = Array(CTVectors.leafHashes.prefix(vector.size))
        #expect(try Merkle.inclusionProof(index: vector.index, leafHashes: leafHashes) == vector.proof)
        try Merkle.verifyInclusion(leafHash: leafHashes[vector.index], index: UInt64(vector.index),
                                   treeSize: UInt64(vector.size), proof: vector.proof, root: CTVectors.roots[vector.size - 1])
    }

    @Test(arguments: CTVectors.consistencies) func knownConsistencyProofs(vector: CTVectors.Consistency) throws {
        let leafHashes = Array(CTVectors.leafHashes.prefix(vector.new))
        #expect(try Merkle.consistencyProof(oldSize: vector.old, leafHashes: leafHashes) == vector.proof)
        try Merkle.verifyConsistency(oldSize: UInt64(vector.old), newSize: UInt64(vector.new),
                                     oldRoot: CTVectors.roots[vector.old - 1], newRoot: CTVectors.roots[vector.new - 1],
                                     proof: vector.proof)
    }

    @Test func hashesParseOnlyFrom32BytesOr64HexDigits() {
        #expect(MerkleHash(bytes: [UInt8](repeating: 7, count: 31)) == nil)
        #expect(MerkleHash(bytes: [UInt8](repeating: 7, count: 33)) == nil)
        #expect(MerkleHash(hex: String(repeating: "a", count: 63)) == nil)
        #expect(MerkleHash(hex: String(repeating: "g", count: 64)) == nil)
        let root = CTVectors.roots[7]
        #expect(MerkleHash(bytes: root.bytes) == root)
        #expect(MerkleHash(hex: root.hex.uppercased()) == root)
        #expect(root.bytes.count == 32)
    }
}
