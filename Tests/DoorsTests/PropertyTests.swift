import TestRandom
import Testing
import Doors

/// decode(encode(m)) == m over generated messages of every type, the stream cut at random.
@Suite struct PropertyTests {
    @Test(arguments: 0..<8)
    func generatedFramesRoundTrip(seed: UInt64) throws {
        var generator = MessageGenerator(rng: SeededGenerator(seed: 0xD00D_0000 + seed))
        let frames = (0..<300).map { _ in generator.frame() }
        let encoder = FrameEncoder()
        var wire: [UInt8] = []
        for frame in frames {
            let single = try encoder.encode(frame)
            #expect(try decodeAll(single) == [frame])
            wire += single
        }

        var decoder = FrameDecoder()
        var decoded: [Frame] = []
        var offset = 0
        while offset < wire.count {
            let size = min(generator.int(0...3) == 0 ? generator.int(0...8) : generator.int(1...70_000), decoder.freeCapacity, wire.count - offset)
            decoder.append(wire[offset..<offset + size])
            offset += size
            while let frame = try decoder.next() { decoded.append(frame) }
        }
        #expect(decoded == frames)
    }

    @Test func everyTypeIsGenerated() {
        var generator = MessageGenerator(rng: SeededGenerator(seed: 1))
        let types = Set((0..<2000).map { _ in generator.frame().type })
        #expect(types == Set(FrameType.allCases))
    }

    /// Flipping any single byte of a valid frame never crashes the decoder: it yields a frame,
    /// waits, or throws a typed error; and a frame it yields is the one those bytes encode (the
    /// encoding is canonical: the decoder accepts no second spelling of a frame).
    @Test func corruptedFramesFailCleanly() throws {
        var generator = MessageGenerator(rng: SeededGenerator(seed: 77))
        var (refused, waited, accepted) = (0, 0, 0)
        for _ in 0..<40 {
            var frame = generator.frame()
            if case .stdoutData = frame.message { frame = Frame(requestID: 1, .stdoutData([1, 2, 3])) }
            let bytes = try encode(frame)
            for index in bytes.indices.prefix(200) {
                var corrupted = bytes
                corrupted[index] ^= UInt8(truncatingIfNeeded: generator.rng.next() | 1)
                var decoder = FrameDecoder()
                decoder.append(corrupted)
                do {
                    guard let decoded = try decoder.next() else {
                        waited += 1
                        continue
                    }
                    accepted += 1
                    let again = try encode(decoded)
                    #expect(corrupted.starts(with: again), "byte \(index) of \(frame.type): decoded \(decoded), which encodes otherwise")
                } catch {
                    refused += 1
                }
            }
        }
        // Every outcome is reached: most flips are refused, a length flip waits for more bytes,
        // and a flip inside data yields another valid frame.
        #expect(refused > 1000 && waited > 10 && accepted > 100, "\(refused) refused, \(waited) waited, \(accepted) accepted")
    }
}
