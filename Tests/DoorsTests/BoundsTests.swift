import Testing
import Doors

@Suite struct BoundsTests {
    @Test func maxPayloadPlusOneIsRefusedFromTheHeaderAlone() throws {
        var decoder = FrameDecoder()
        let limit = DoorsProtocol.maxPayload
        decoder.append(rawFrame(type: FrameType.fileData.rawValue, length: UInt32(limit + 1)))
        #expect(decoder.bufferedByteCount == DoorsProtocol.headerSize)
        #expect(throws: DoorsError.payloadTooLarge(length: limit + 1, limit: limit)) { try decoder.next() }

        var atLimit = FrameDecoder()
        atLimit.append(rawFrame(type: FrameType.fileData.rawValue, length: UInt32(limit)))
        #expect(try atLimit.next() == nil)  // waits for the payload
    }

    @Test func theLargestLengthFieldIsRefusedWithoutAllocating() {
        var decoder = FrameDecoder()
        decoder.append(rawFrame(type: FrameType.stdoutData.rawValue, length: .max))
        #expect(throws: DoorsError.payloadTooLarge(length: Int(UInt32.max), limit: DoorsProtocol.maxPayload)) {
            try decoder.next()
        }
    }

    @Test func aSmallerDecoderLimitIsEnforced() throws {
        var decoder = FrameDecoder(maxPayload: 65_536)
        decoder.append(try encode(Frame(requestID: 1, .stdoutData([UInt8](repeating: 0, count: 65_537)))))
        #expect(throws: DoorsError.payloadTooLarge(length: 65_537, limit: 65_536)) { try decoder.next() }
    }

    @Test func theEncoderRefusesOversizedPayloads() throws {
        let tooBig = Frame(requestID: 1, .fileData([UInt8](repeating: 0, count: DoorsProtocol.maxPayload + 1)))
        #expect(throws: DoorsError.payloadTooLarge(length: DoorsProtocol.maxPayload + 1, limit: DoorsProtocol.maxPayload)) {
            try encode(tooBig)
        }
        // A structured payload over the peer's limit is caught after it is laid out.
        let argv = ["x"] + [String](repeating: String(repeating: "a", count: 100), count: 1000)
        let encoder = FrameEncoder(maxPayload: 65_536)
        #expect(throws: DoorsError.self) { try encoder.encode(Frame(requestID: 1, .exec(ExecRequest(argv: argv)))) }
        #expect(throws: Never.self) { try FrameEncoder().encode(Frame(requestID: 1, .exec(ExecRequest(argv: argv)))) }
    }

    @Test func argvCountOverTheBound() {
        let over = DoorsLimits.maxArguments + 1
        #expect(problem(.exec, le(UInt32(over))) == .countOverBound(.argv, count: over, bound: DoorsLimits.maxArguments))
        #expect(problem(.exec, le(UInt32.max)) == .countOverBound(.argv, count: Int(UInt32.max), bound: DoorsLimits.maxArguments))
        let argv = [String](repeating: "a", count: over)
        #expect(encodeProblem(.exec(ExecRequest(argv: argv))) == .countOverBound(.argv, count: over, bound: DoorsLimits.maxArguments))
        // At the bound it encodes and decodes.
        let full = Frame(requestID: 1, .exec(ExecRequest(argv: [String](repeating: "a", count: DoorsLimits.maxArguments))))
        #expect((try? decodeAll(encode(full))) == [full])
    }

    @Test func otherCountsOverTheirBounds() {
        let argv = le(UInt32(1)) + str("ls")
        let envOver = DoorsLimits.maxEnvironment + 1
        #expect(problem(.exec, argv + le(UInt32(envOver))) == .countOverBound(.env, count: envOver, bound: DoorsLimits.maxEnvironment))
        let listOver = DoorsLimits.maxListBatch + 1
        #expect(problem(.listEntries, le(UInt32(listOver))) == .countOverBound(.entries, count: listOver, bound: DoorsLimits.maxListBatch))
        #expect(problem(.hello, [17]) == .countOverBound(.versions, count: 17, bound: DoorsLimits.maxVersions))
        let entries = [DirectoryEntry](repeating: DirectoryEntry(name: "a", type: .regular), count: listOver)
        #expect(encodeProblem(.listEntries(entries)) == .countOverBound(.entries, count: listOver, bound: DoorsLimits.maxListBatch))
    }

    @Test func pathOverTheBound() {
        let path = "/" + String(repeating: "a", count: DoorsLimits.maxPathLength)
        #expect(encodeProblem(.list(path: path)) == .lengthOverBound(.path, length: 4097, bound: 4096))
        // The decoder checks the length prefix before looking at (or waiting for) the bytes.
        #expect(problem(.list, le(UInt32(4097))) == .lengthOverBound(.path, length: 4097, bound: 4096))
        #expect(problem(.list, str(path)) == .lengthOverBound(.path, length: 4097, bound: 4096))
        #expect(problem(.writeFile, le(UInt32.max)) == .lengthOverBound(.path, length: Int(UInt32.max), bound: 4096))
    }

    @Test func stringLengthsOverTheirBounds() {
        let long = String(repeating: "x", count: 256)
        #expect(encodeProblem(.listEntries([DirectoryEntry(name: long, type: .regular)]))
            == .lengthOverBound(.entryName, length: 256, bound: 255))
        #expect(problem(.error, [1, 0, 0] + le(UInt32(4097))) == .lengthOverBound(.message, length: 4097, bound: 4096))
        #expect(problem(.hello, [1, 1] + le(UInt32(65_536)) + le(UInt32(257))) == .lengthOverBound(.software, length: 257, bound: 256))
        #expect(problem(.exec, le(UInt32(1)) + le(UInt32(131_073))) == .lengthOverBound(.argv, length: 131_073, bound: 131_072))
        #expect(encodeProblem(.error(ErrorReply(code: .io, message: String(repeating: "é", count: 2049))))
            == .lengthOverBound(.message, length: 4098, bound: 4096))
    }

    @Test func directoryBatchesFitTheirFrames() throws {
        let entries = (0..<10_000).map { DirectoryEntry(name: "entry-\($0)-" + String(repeating: "n", count: $0 % 200), type: .regular) }
        for maxPayload in [65_536, DoorsProtocol.maxPayload] {
            let batches = DirectoryEntry.batches(entries, maxPayload: maxPayload)
            #expect(batches.flatMap { $0 } == entries)
            let encoder = FrameEncoder(maxPayload: maxPayload)
            for batch in batches {
                #expect(batch.count <= DoorsLimits.maxListBatch)
                let bytes = try encoder.encode(Frame(requestID: 1, .listEntries(batch)))
                #expect(bytes.count - DoorsProtocol.headerSize <= maxPayload)
            }
        }
        let tiny = (0..<5000).map { DirectoryEntry(name: "\($0)", type: .other) }
        #expect(DirectoryEntry.batches(tiny).map(\.count) == [4096, 904])
        #expect(DirectoryEntry.batches([]).isEmpty)
    }
}
