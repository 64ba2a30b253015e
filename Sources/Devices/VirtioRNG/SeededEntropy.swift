/// A deterministic entropy stream for sessions that must be replayed: the ChaCha20 keystream
/// (RFC 8439 §2.3) under a 32-byte seed as the key, nonce zero, block counter from 0. The same
/// seed gives the guest the same bytes in the same order; different seeds give unrelated ones.
import POSIX

public final class SeededEntropy: EntropySource, @unchecked Sendable {
    public static let seedSize = 32

    private let lock = Lock()
    private let key: [UInt32]
    /// Blocks used so far: words 12 and 13 of the state (the 64-bit counter of ChaCha20's
    /// original form, so 2^64 blocks before it wraps rather than RFC 8439's 2^32).
    private var counter: UInt64 = 0
    private var block: [UInt8] = []
    private var used = 0

    /// `seed` must be exactly `seedSize` bytes.
    public init?(seed: [UInt8]) {
        guard seed.count == Self.seedSize else { return nil }
        key = (0..<8).map { i in
            (0..<4).reduce(UInt32(0)) { $0 | UInt32(seed[4 * i + $1]) << (8 * UInt32($1)) }
        }
    }

    public func fill(_ count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        return lock.withLock {
            var out: [UInt8] = []
            out.reserveCapacity(count)
            while out.count < count {
                if used == block.count {
                    block = Self.block(key: key, counter: UInt32(truncatingIfNeeded: counter),
                                       nonce: [UInt32(truncatingIfNeeded: counter >> 32), 0, 0])
                    counter &+= 1
                    used = 0
                }
                let take = min(count - out.count, block.count - used)
                out += block[used..<used + take]
                used += take
            }
            return out
        }
    }

    /// The ChaCha20 block function (RFC 8439 §2.3): 20 rounds over the constants, key,
    /// counter and nonce, added to the input state, serialised little-endian.
    static func block(key: [UInt32], counter: UInt32, nonce: [UInt32]) -> [UInt8] {
        let input: [UInt32] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574] + key + [counter] + nonce
        var x = input
        // §2.1: the quarter round on four words of the state.
        func quarter(_ a: Int, _ b: Int, _ c: Int, _ d: Int) {
            x[a] &+= x[b]; x[d] ^= x[a]; x[d] = x[d] << 16 | x[d] >> 16
            x[c] &+= x[d]; x[b] ^= x[c]; x[b] = x[b] << 12 | x[b] >> 20
            x[a] &+= x[b]; x[d] ^= x[a]; x[d] = x[d] << 8 | x[d] >> 24
            x[c] &+= x[d]; x[b] ^= x[c]; x[b] = x[b] << 7 | x[b] >> 25
        }
        for _ in 0..<10 {  // §2.3: ten double rounds, columns then diagonals
            quarter(0, 4, 8, 12); quarter(1, 5, 9, 13); quarter(2, 6, 10, 14); quarter(3, 7, 11, 15)
            quarter(0, 5, 10, 15); quarter(1, 6, 11, 12); quarter(2, 7, 8, 13); quarter(3, 4, 9, 14)
        }
        var out = [UInt8](repeating: 0, count: 64)
        for i in 0..<16 {
            let word = x[i] &+ input[i]
            for j in 0..<4 { out[4 * i + j] = UInt8(truncatingIfNeeded: word >> (8 * UInt32(j))) }
        }
        return out
    }
}
