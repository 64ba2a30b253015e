@testable import Devices
import Testing

/// The seeded entropy stream for replayable sessions.
@Suite struct SeededEntropyTests {
    /// RFC 8439 §2.3.2: the block function's test vector (key 00..1f, counter 1, nonce
    /// 00 00 00 09 00 00 00 4a 00 00 00 00).
    @Test func chacha20BlockMatchesRFC8439() {
        // Bytes 00 01 02 … 1f read as little-endian words.
        let key: [UInt32] = [0x0302_0100, 0x0706_0504, 0x0b0a_0908, 0x0f0e_0d0c,
                             0x1312_1110, 0x1716_1514, 0x1b1a_1918, 0x1f1e_1d1c]
        let block = SeededEntropy.block(key: key, counter: 1, nonce: [0x0900_0000, 0x4a00_0000, 0])
        let expected: [UInt8] = [
            0x10, 0xf1, 0xe7, 0xe4, 0xd1, 0x3b, 0x59, 0x15, 0x50, 0x0f, 0xdd, 0x1f, 0xa3, 0x20, 0x71, 0xc4,
            0xc7, 0xd1, 0xf4, 0xc7, 0x33, 0xc0, 0x68, 0x03, 0x04, 0x22, 0xaa, 0x9a, 0xc3, 0xd4, 0x6c, 0x4e,
            0xd2, 0x82, 0x64, 0x46, 0x07, 0x9f, 0xaa, 0x09, 0x14, 0xc2, 0xd7, 0x05, 0xd9, 0x8b, 0x02, 0xa2,
            0xb5, 0x12, 0x9c, 0xd1, 0xde, 0x16, 0x4e, 0xb9, 0xcb, 0xd0, 0x83, 0xe8, 0xa2, 0x50, 0x3c, 0x4e,
        ]
        #expect(block == expected)
    }

    /// The same seed gives the same stream however it is cut into requests; another seed
    /// gives another stream.
    @Test func theSameSeedGivesTheSameStream() throws {
        let seed = (0..<32).map { UInt8($0 * 7 & 0xff) }
        let whole = try #require(SeededEntropy(seed: seed)).fill(10_000)
        let pieces = try #require(SeededEntropy(seed: seed))
        var cut: [UInt8] = []
        for size in [1, 63, 64, 65, 500, 4096, 5211] { cut += pieces.fill(size) }
        #expect(cut == whole)
        var other = seed
        other[31] ^= 1
        let different = try #require(SeededEntropy(seed: other)).fill(10_000)
        #expect(different != whole)
        #expect(zip(different, whole).filter { $0 == $1 }.count < 200)  // ~39 expected by chance
        #expect(Set(whole).count == 256)
    }

    @Test func aSeedMustBe32Bytes() {
        #expect(SeededEntropy(seed: []) == nil)
        #expect(SeededEntropy(seed: [UInt8](repeating: 1, count: 31)) == nil)
        #expect(SeededEntropy(seed: [UInt8](repeating: 1, count: 33)) == nil)
        #expect(SeededEntropy(seed: [UInt8](repeating: 1, count: 32)) != nil)
    }

    /// Behind the device, the guest's buffers get exactly the stream's bytes in order.
    @Test func theDeviceHandsOutTheSeededStream() throws {
        let seed = [UInt8](repeating: 0x5a, count: 32)
        let expected = try #require(SeededEntropy(seed: seed)).fill(48)
        let guest = try RNGGuest(source: try #require(SeededEntropy(seed: seed)))
        guest.probe()
        guest.driver.addChain([.writable(0x10000, 16)])
        guest.driver.addChain([.writable(0x11000, 32)])
        guest.notify()
        #expect(guest.driver.usedIndex == 2)
        #expect(try guest.bytes(0x10000, 16) == Array(expected[0..<16]))
        #expect(try guest.bytes(0x11000, 32) == Array(expected[16..<48]))
    }
}
