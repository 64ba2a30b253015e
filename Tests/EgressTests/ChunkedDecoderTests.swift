import HTTPWire
import Testing

@Suite struct ChunkedDecoderTests {
    func decode(_ bytes: [UInt8]) -> (Result<[UInt8], ChunkedError>, finished: Bool) {
        var decoder = ChunkedDecoder()
        let result = decoder.feed(bytes[...])
        return (result, decoder.isFinished)
    }

    static let body = Array("4\r\nWiki\r\n5;name=\"v a\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0000;last\r\nExpires: never\r\nX: y\r\n\r\n".utf8)

    @Test func decodesChunksExtensionsAndTrailers() throws {
        let (result, finished) = decode(Self.body)
        #expect(try result.get() == Array("Wikipedia in\r\n\r\nchunks.".utf8))
        #expect(finished)
        let (empty, emptyFinished) = decode(Array("0\r\n\r\n".utf8))
        #expect(try empty.get() == [] && emptyFinished)
        let (hex, _) = decode(Array("a\r\n0123456789\r\nA\r\nabcdefghij\r\n".utf8))
        #expect(try hex.get().count == 20)
    }

    /// Fed one byte at a time, and cut in two at every byte, the decoder gives what it gives whole.
    @Test func everySplitDecodesTheSame() throws {
        let whole = try decode(Self.body).0.get()
        var decoder = ChunkedDecoder()
        var out: [UInt8] = []
        for index in Self.body.indices {
            out += try decoder.feed(Self.body[index...index]).get()
            #expect(decoder.isFinished == (index == Self.body.count - 1))
        }
        #expect(out == whole)
        for cut in 0...Self.body.count {
            var split = ChunkedDecoder()
            let first = try split.feed(Self.body[..<cut]).get()
            let second = try split.feed(Self.body[cut...]).get()
            #expect(first + second == whole && split.isFinished, "cut at \(cut)")
        }
    }

    @Test(arguments: [
        "4\r\nWikiX\r\n0\r\n\r\n",                    // no CRLF after the data
        "4\nWiki\r\n0\r\n\r\n",                       // bare LF ending the size line
        "4\r\nWiki\r\n0\r\n\n",                       // bare LF ending the trailers
        "4\rx\r\nWiki\r\n",                           // bare CR
        "x\r\n",                                      // no size
        ";a\r\n",
        "4 \r\nWiki\r\n",                             // whitespace not before an extension
        "4x\r\nWiki\r\n",
        "-4\r\nWiki\r\n",
        "4;a\u{1}\r\nWiki\r\n",                       // a control character in an extension
        "10000000000000000\r\n",                      // 2^64: past UInt64
        "0\r\n\r\nextra",                             // bytes after the end
    ])
    func malformedBodiesAreRefused(_ text: String) {
        var decoder = ChunkedDecoder()
        #expect(throws: ChunkedError.self, "\(text.debugDescription)") { try decoder.feed(Array(text.utf8)[...]).get() }
        // The error is sticky.
        #expect(throws: ChunkedError.self) { try decoder.feed(Array("0\r\n\r\n".utf8)[...]).get() }
    }

    @Test func sizesAreBoundedWithoutOverflow() throws {
        // The largest size there is parses (the data never comes); one hex digit more fails.
        var largest = ChunkedDecoder()
        #expect(try largest.feed(Array("FFFFFFFFFFFFFFFF\r\nab".utf8)[...]).get() == Array("ab".utf8))
        #expect(try largest.feed(Array("cd".utf8)[...]).get() == Array("cd".utf8))
        #expect(!largest.isFinished)
        // Leading zeros are digits, not size.
        #expect(try decode(Array(("000000000000000000001\r\nz\r\n0\r\n\r\n").utf8)).0.get() == [UInt8(ascii: "z")])
        let longLine = "1;" + String(repeating: "e", count: ChunkedDecoder.maximumSizeLineBytes) + "\r\n"
        #expect(throws: ChunkedError.self) { try self.decode(Array(longLine.utf8)).0.get() }
        let okLine = "1;" + String(repeating: "e", count: ChunkedDecoder.maximumSizeLineBytes - 2) + "\r\nz\r\n"
        #expect(try decode(Array(okLine.utf8)).0.get() == [UInt8(ascii: "z")])
        let trailers = "0\r\n" + String(repeating: "X-Long: " + String(repeating: "v", count: 100) + "\r\n", count: 200) + "\r\n"
        #expect(throws: ChunkedError.self) { try self.decode(Array(trailers.utf8)).0.get() }
    }
}
