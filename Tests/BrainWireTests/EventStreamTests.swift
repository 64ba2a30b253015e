import BrainWire
import Testing

@Suite struct EventStreamTests {
    func scan(_ bytes: [UInt8], pieces size: Int? = nil, bound: Int = 1 << 20) -> Result<[ServerSentEvent], EventStreamError> {
        var scanner = EventStreamScanner(maximumEventBytes: bound)
        guard let size else { return scanner.feed(bytes[...]) }
        var events: [ServerSentEvent] = []
        var start = 0
        while start < bytes.count {
            let end = min(start + size, bytes.count)
            switch scanner.feed(bytes[start..<end]) {
            case .success(let found): events += found
            case .failure(let error): return .failure(error)
            }
            start = end
        }
        return .success(events)
    }

    func event(_ type: String?, _ data: String) -> ServerSentEvent { ServerSentEvent(event: type, data: Array(data.utf8)) }

    @Test func linesEndInCRLFOrLFOrCR() throws {
        let expected = [event(nil, "a"), event("done", "b\nc"), event(nil, "")]
        for end in ["\r\n", "\n", "\r"] {
            let text = "data: a" + end + end + "event: done" + end + "data:b" + end + "data: c" + end + end + "data" + end + end
            #expect(try scan(Array(text.utf8)).get() == expected, "\(end.debugDescription)")
        }
        // Mixed within one stream.
        #expect(try scan(Array("data: a\r\rdata: b\n\r\n".utf8)).get() == [event(nil, "a"), event(nil, "b")])
    }

    @Test func commentsBlankLinesAndOtherFieldsAreIgnored() throws {
        let text = ": ping\n\n\n\nid: 7\nretry: 10\nfoo: bar\ndata:  two spaces\n: inside\n\nevent: x\n\n"
        // "event" alone dispatches nothing (the data buffer is empty).
        #expect(try scan(Array(text.utf8)).get() == [event(nil, " two spaces")])
    }

    @Test func aLeadingBOMIsSkippedOnce() throws {
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        #expect(try scan(bom + Array("data: a\n\n".utf8), pieces: 1).get() == [event(nil, "a")])
        // A second BOM is part of the line: the field's name is then not "data".
        #expect(try scan(bom + bom + Array("data: a\n\n".utf8)).get() == [])
        // A partial BOM is text.
        #expect(try scan([0xEF, 0xBB] + Array(":x\ndata: a\n\n".utf8)).get() == [event(nil, "a")])
    }

    @Test func byteAtATimeEqualsWhole() throws {
        let text = "\u{FEFF}: hi\r\ndata: {\"a\":1}\r\n\r\nevent: e\rdata: x\rdata: y\r\rdata: z\n\ndata: [DONE]\r\n\r\n"
        let bytes = Array(text.utf8)
        let whole = try scan(bytes).get()
        #expect(whole.count == 4)
        for size in 1...9 { #expect(try scan(bytes, pieces: size).get() == whole, "pieces of \(size)") }
        // Every split into two feeds, the CR of a CRLF on one side and its LF on the other included.
        for cut in 0...bytes.count {
            var scanner = EventStreamScanner()
            let first = try scanner.feed(bytes[..<cut]).get()
            let second = try scanner.feed(bytes[cut...]).get()
            #expect(first + second == whole, "cut at \(cut)")
        }
    }

    @Test func anEventOverTheBoundIsRefusedAndStaysRefused() {
        let long = Array(("data: " + String(repeating: "x", count: 100) + "\n\n").utf8)
        #expect((try? scan(long, bound: 200).get())?.count == 1)
        var scanner = EventStreamScanner(maximumEventBytes: 64)
        #expect(throws: EventStreamError.self) { try scanner.feed(long[...]).get() }
        #expect(throws: EventStreamError.self) { try scanner.feed(Array("data: a\n\n".utf8)[...]).get() }
        // Many short data lines add up too, and an endless comment line is bounded.
        let lines = Array(String(repeating: "data: abc\n", count: 20).utf8)
        #expect(throws: EventStreamError.self) { try self.scan(lines, bound: 64).get() }
        #expect(throws: EventStreamError.self) { try self.scan(Array((":" + String(repeating: "c", count: 100)).utf8), bound: 64).get() }
    }

    @Test func finishReportsAnUnfinishedEvent() throws {
        var clean = EventStreamScanner()
        _ = try clean.feed(Array("data: a\n\n".utf8)[...]).get()
        #expect((try? clean.finish().get()) != nil)
        var cut = EventStreamScanner()
        #expect(try cut.feed(Array("data: a\n".utf8)[...]).get() == [])
        #expect(throws: EventStreamError.self) { try cut.finish().get() }
    }
}
