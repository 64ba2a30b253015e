import HTTPWire
import Testing

@Suite struct ResponseHeadTests {
    func parse(_ text: String, method: String = "POST") -> Result<ResponseHead, ResponseHeadError> {
        ResponseHeadParser.parse(Array(text.utf8)[...], requestMethod: method)
    }

    @Test func statusLineAndFields() throws {
        let head = try parse("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n").get()
        #expect(head.status == 200 && head.reason == "OK" && head.version == "HTTP/1.1")
        #expect(head.value(of: "content-type") == "text/event-stream")
        #expect(head.framing == .chunked)
        let old = try parse("HTTP/1.0 404 Not Found Here\r\nContent-Length: 3\r\n\r\n").get()
        #expect(old.version == "HTTP/1.0" && old.status == 404 && old.reason == "Not Found Here" && old.framing == .length(3))
        // The reason may be empty, its space included or not.
        #expect(try parse("HTTP/1.1 204 \r\n\r\n").get().reason == "")
        #expect(try parse("HTTP/1.1 429\r\nContent-Length: 0\r\n\r\n").get().status == 429)
    }

    @Test func framingFollowsRFC9112Section6_3() throws {
        #expect(try parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", method: "HEAD").get().framing == .none)
        for status in [100, 101, 103, 204, 304] {
            #expect(try parse("HTTP/1.1 \(status) X\r\nContent-Length: 10\r\n\r\n").get().framing == .none, "\(status)")
        }
        #expect(try parse("HTTP/1.1 200 OK\r\n\r\n").get().framing == .untilClose)
        #expect(try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").get().framing == .chunked)
        #expect(try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED\r\n\r\n").get().framing == .chunked)
        #expect(try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").get().framing == .untilClose)
        #expect(try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").get().framing == .untilClose)
        #expect(try parse("HTTP/1.1 200 OK\r\nContent-Length: 42, 42\r\nContent-Length: 42\r\n\r\n").get().framing == .length(42))
        #expect(try parse("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n").get().framing == .length(UInt64.max))
    }

    @Test(arguments: [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",  // both: smuggling
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",           // differing lengths
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",           // past UInt64
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 099 OK\r\n\r\n",
        "HTTP/1.1 600 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 O\u{7f}K\r\n\r\n",
        "HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n",                                  // bare LF
        "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nName : x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
    ])
    func ambiguousHeadsAreRefused(_ text: String) {
        guard case .failure(let error) = parse(text) else {
            Issue.record("accepted: \(text.debugDescription)")
            return
        }
        #expect(error.status == 502)
    }

    @Test func sizesAreBounded() throws {
        let many = "HTTP/1.1 200 OK\r\n" + String(repeating: "X: y\r\n", count: ResponseHeadParser.maximumFields + 1) + "\r\n"
        #expect((try? parse(many).get()) == nil)
        let hundred = "HTTP/1.1 200 OK\r\n" + String(repeating: "X: y\r\n", count: ResponseHeadParser.maximumFields) + "\r\n"
        #expect((try? parse(hundred).get())?.fields.count == 100)
        let endless = [UInt8](repeating: UInt8(ascii: "a"), count: ResponseHeadParser.maximumHeadBytes + 10)
        #expect(throws: ResponseHeadError.self) { try ResponseHeadParser.headLength(endless).get() }
        let text = Array("HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody".utf8)
        #expect(try ResponseHeadParser.headLength(text).get() == text.count - 4)
        #expect(try ResponseHeadParser.headLength(text.prefix(10)).get() == nil)
    }
}
