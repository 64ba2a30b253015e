import TestRandom
import Testing
import Doors

@Suite struct FrameDecoderTests {
    /// All the samples back to back, in one stream.
    private func stream() throws -> [UInt8] {
        try samples.flatMap { try encode($0) }
    }

    @Test func oneByteAtATime() throws {
        var decoder = FrameDecoder()
        var frames: [Frame] = []
        for byte in try stream() {
            decoder.append(CollectionOfOne(byte))
            while let frame = try decoder.next() { frames.append(frame) }
        }
        #expect(frames == samples)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test(arguments: [1, 2, 3, 0xC0FFEE, 0xDECAF, 12_345])
    func randomSplits(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let bytes = try stream()
        var decoder = FrameDecoder()
        var frames: [Frame] = []
        var offset = 0
        while offset < bytes.count {
            let size = min(Int.random(in: 0...40, using: &rng), bytes.count - offset)
            decoder.append(bytes[offset..<offset + size])
            offset += size
            while let frame = try decoder.next() { frames.append(frame) }
        }
        #expect(frames == samples)
    }

    @Test func aSequenceWithoutContiguousStorage() throws {
        let bytes = try stream()
        var decoder = FrameDecoder()
        decoder.append(bytes.lazy.map { $0 })
        var frames: [Frame] = []
        while let frame = try decoder.next() { frames.append(frame) }
        #expect(frames == samples)
    }

    @Test func partialFramesWaitForMoreBytes() throws {
        let bytes = try encode(Frame(requestID: 1, .ping(nonce: 1)))
        var decoder = FrameDecoder()
        decoder.append(bytes.prefix(15))
        #expect(try decoder.next() == nil)
        decoder.append(bytes[15..<23])
        #expect(try decoder.next() == nil)
        decoder.append(bytes[23...])
        #expect(try decoder.next() == Frame(requestID: 1, .ping(nonce: 1)))
        #expect(try decoder.next() == nil)
    }

    /// A 64 MiB file moves as 256 full data frames; the decoder reads it in transport-sized
    /// pieces and never holds more than one frame and its header.
    @Test func aLargeFileStreamsWithinTheBufferLimit() throws {
        let chunk = (0..<DoorsProtocol.maxPayload).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let encoder = FrameEncoder()
        var wire: [UInt8] = []
        wire.reserveCapacity(64 << 20 + 300 * DoorsProtocol.headerSize)
        for _ in 0..<256 { try encoder.encode(Frame(requestID: 5, .fileData(chunk)), into: &wire) }
        try encoder.encode(Frame(requestID: 5, .fileEnd), into: &wire)

        var decoder = FrameDecoder()
        var received = 0
        var offset = 0
        var ended = false
        var largestBuffer = 0
        while offset < wire.count {
            let size = min(decoder.freeCapacity, 100_000, wire.count - offset)
            decoder.append(wire[offset..<offset + size])
            offset += size
            largestBuffer = max(largestBuffer, decoder.bufferedByteCount)
            while let frame = try decoder.next() {
                switch frame.message {
                case .fileData(let bytes):
                    #expect(bytes.count == chunk.count && bytes.first == chunk.first && bytes.last == chunk.last)
                    received += bytes.count
                case .fileEnd: ended = true
                default: Issue.record("unexpected \(frame.type)")
                }
            }
        }
        #expect(received == 64 << 20)
        #expect(ended)
        #expect(largestBuffer <= decoder.bufferLimit)
    }

    // MARK: - Header errors: fatal, found before the payload is buffered

    @Test func badMagicIsRejectedFromTheHeader() {
        var decoder = FrameDecoder()
        decoder.append(rawFrame(type: 0x04, magic: 0x4D44, length: 8))
        #expect(throws: DoorsError.badMagic(0x4D44)) { try decoder.next() }
        #expect(decoder.bufferedByteCount == DoorsProtocol.headerSize)
    }

    @Test func unsupportedVersionIsRejected() {
        var decoder = FrameDecoder()
        decoder.append(rawFrame(type: 0x04, version: 3, length: 8))
        #expect(throws: DoorsError.unsupportedVersion(3)) { try decoder.next() }
        // Version 1 followed symlinks in the paths it walked: no longer spoken.
        var one = FrameDecoder()
        one.append(rawFrame(type: 0x04, version: 1, length: 8))
        #expect(throws: DoorsError.unsupportedVersion(1)) { try one.next() }
        // A Hello's header and a connection-level Error's say version 1, and nothing else.
        var hello = FrameDecoder()
        hello.append(rawFrame(type: 0x01, requestID: 0, version: 2, length: 8))
        #expect(throws: DoorsError.unsupportedVersion(2)) { try hello.next() }
        var zero = FrameDecoder()
        zero.append(rawFrame(type: 0x04, version: 0, length: 8))
        #expect(throws: DoorsError.unsupportedVersion(0)) { try zero.next() }
    }

    @Test func unknownFrameTypeIsRejected() {
        for type: UInt8 in [0x00, 0x07, 0x0F, 0x18, 0x2D, 0xFF] {
            var decoder = FrameDecoder()
            decoder.append(rawFrame(type: type))
            #expect(throws: DoorsError.unknownFrameType(type)) { try decoder.next() }
        }
    }

    @Test func unknownFlagsAreRejected() {
        var decoder = FrameDecoder()
        decoder.append(rawFrame(type: 0x06, flags: 0x8000_0000))
        #expect(throws: DoorsError.unknownFlags(0x8000_0000)) { try decoder.next() }
    }

    @Test func headerErrorsAreStickyAndFatal() throws {
        var decoder = FrameDecoder()
        decoder.append(rawFrame(type: 0x99))
        #expect(throws: DoorsError.unknownFrameType(0x99)) { try decoder.next() }
        decoder.append(try encode(Frame(requestID: 1, .cancel)))
        #expect(throws: DoorsError.unknownFrameType(0x99)) { try decoder.next() }
        #expect(decoder.freeCapacity == 0)
        #expect(DoorsError.unknownFrameType(0x99).isFatal)
        #expect(DoorsError.unknownFrameType(0x99).reply == Frame(
            requestID: 0, .error(ErrorReply(code: .malformedFrame, message: "unknown frame type 0x99"))))
    }

    @Test func aHeaderIsNotCheckedUntilItIsWhole() throws {
        var decoder = FrameDecoder()
        decoder.append(rawFrame(type: 0xFF).prefix(15))
        #expect(try decoder.next() == nil)
    }

    // MARK: - Payload errors: the frame is skipped, the stream goes on

    @Test func aBadPayloadSkipsOnlyThatFrame() throws {
        var decoder = FrameDecoder()
        decoder.append(rawFrame(type: FrameType.kill.rawValue, requestID: 3, payload: [200]))
        decoder.append(try encode(Frame(requestID: 4, .kill(signal: 9))))
        let expected = DoorsError.invalidFrame(.kill, requestID: 3, .outOfRange(.signal, 200))
        #expect(throws: expected) { try decoder.next() }
        #expect(!expected.isFatal)
        #expect(expected.reply.requestID == 3)
        #expect(try decoder.next() == Frame(requestID: 4, .kill(signal: 9)))
        #expect(try decoder.next() == nil)
    }

    // MARK: - Buffer bound

    @Test func appendingPastTheLimitOverflows() throws {
        var decoder = FrameDecoder(maxPayload: 65_536)
        #expect(decoder.bufferLimit == 65_536 + 16)
        #expect(decoder.freeCapacity == decoder.bufferLimit)
        let ping = try encode(Frame(requestID: 1, .ping(nonce: 7)))
        var bytes = ping
        while bytes.count <= decoder.bufferLimit { bytes += ping }
        decoder.append(bytes)
        #expect(decoder.bufferedByteCount == decoder.bufferLimit)
        #expect(decoder.freeCapacity == 0)
        // The whole frames that fit come out first, then the overflow.
        var count = 0
        #expect(throws: DoorsError.bufferOverflow(limit: decoder.bufferLimit)) {
            while try decoder.next() != nil { count += 1 }
        }
        #expect(count == decoder.bufferLimit / ping.count)
        #expect(decoder.bufferedByteCount == 0)
        #expect(throws: DoorsError.bufferOverflow(limit: decoder.bufferLimit)) { try decoder.next() }
    }

    @Test func overflowOnTheByteByBytePath() throws {
        var decoder = FrameDecoder(maxPayload: 65_536)
        decoder.append((0..<(decoder.bufferLimit + 1)).lazy.map { _ in UInt8(0) })
        #expect(decoder.bufferedByteCount == decoder.bufferLimit)
        #expect(throws: DoorsError.badMagic(0)) { try decoder.next() }
    }

    @Test func aFullBufferAlwaysHoldsAWholeFrame() throws {
        var decoder = FrameDecoder(maxPayload: 65_536)
        let big = try encode(Frame(requestID: 1, .stdoutData([UInt8](repeating: 1, count: 65_536))))
        let small = try encode(Frame(requestID: 1, .stdoutData([2])))
        let wire = small + big + small + big
        var offset = 0
        var frames = 0
        while offset < wire.count {
            let size = min(decoder.freeCapacity, wire.count - offset)
            #expect(size > 0)
            decoder.append(wire[offset..<offset + size])
            offset += size
            while try decoder.next() != nil { frames += 1 }
        }
        #expect(frames == 4)
    }
}
