import HTTPWire
import Testing
import TestRandom

@Suite struct RequestHeadTests {
    func parse(_ text: String) -> Result<RequestHead, RequestHeadError> {
        RequestHeadParser.parse(Array(text.utf8)[...])
    }

    @Test func absoluteFormIsAPlainRequest() throws {
        let head = try parse("GET http://Docs.Example.com:8080/docs/a?q=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n").get()
        #expect(head.method == "GET" && head.version == "HTTP/1.1")
        #expect(head.target == .absolute(host: "Docs.Example.com", port: 8080, pathAndQuery: "/docs/a?q=1"))
        #expect(head.value(of: "accept") == "*/*")
        let bare = try parse("HEAD http://a.example HTTP/1.0\r\n\r\n").get()
        #expect(bare.target == .absolute(host: "a.example", port: 80, pathAndQuery: "/"))
    }

    @Test func connectTakesHostAndPort() throws {
        #expect(try parse("CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\n").get().target == .authority(host: "pypi.org", port: 443))
        #expect(try parse("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n").get().target == .authority(host: "2001:db8::1", port: 8443))
        #expect(throws: RequestHeadError.self) { try parse("CONNECT pypi.org HTTP/1.1\r\n\r\n").get() }
    }

    @Test func originFormIsKept() throws {
        #expect(try parse("POST /v1/chat/completions HTTP/1.1\r\nHost: brain.momin\r\n\r\n").get().target == .origin(pathAndQuery: "/v1/chat/completions"))
    }

    /// Each of these would let two readers see two different requests, or names nothing usable.
    @Test(arguments: [
        ("GET http://a.example/ HTTP/1.1\nHost: a\r\n\r\n", 400),                 // bare LF
        ("GET http://a.example/ HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),    // obsolete folding
        ("GET http://a.example/ HTTP/1.1\r\nHost : a\r\n\r\n", 400),              // space before the colon
        ("GET http://a.example/ HTTP/1.1\r\nX: a\rb\r\n\r\n", 400),               // bare CR
        ("GET http://user@a.example/ HTTP/1.1\r\n\r\n", 400),                     // user information
        ("GET https://a.example/ HTTP/1.1\r\n\r\n", 400),                         // https through the proxy
        ("GET http://a.example/#frag HTTP/1.1\r\n\r\n", 400),                     // a fragment
        ("GET http://a.example:0/ HTTP/1.1\r\n\r\n", 400),                        // port 0
        ("GET http://a.example:99999/ HTTP/1.1\r\n\r\n", 400),                    // port too big
        ("get http://a.example/ HTTP/1.1\r\n\r\n", 400),                          // lowercase method
        ("GET  http://a.example/ HTTP/1.1\r\n\r\n", 400),                         // two spaces
        ("GET http://a.example/ HTTP/2.0\r\n\r\n", 505),
        ("GET http://a\u{7f}.example/ HTTP/1.1\r\n\r\n", 400),
        ("GET ftp://a.example/ HTTP/1.1\r\n\r\n", 400),
    ])
    func ambiguousOrUselessHeadsAreRefused(text: String, status: Int) {
        guard case .failure(let error) = parse(text) else {
            Issue.record("accepted: \(text.debugDescription)")
            return
        }
        #expect(error.status == status, "\(text.debugDescription): \(error)")
    }

    @Test func sizesAreBoundedBeforeAnythingIsKept() throws {
        let long = "GET http://a.example/" + String(repeating: "a", count: RequestHeadParser.maximumTargetBytes) + " HTTP/1.1\r\n\r\n"
        #expect((try? parse(long).get()) == nil)
        let many = "GET http://a.example/ HTTP/1.1\r\n" + String(repeating: "X: y\r\n", count: RequestHeadParser.maximumFields + 1) + "\r\n"
        if case .failure(let error) = parse(many) { #expect(error.status == 431) } else { Issue.record("101 fields accepted") }
        let endless = [UInt8](repeating: UInt8(ascii: "a"), count: RequestHeadParser.maximumHeadBytes + 10)
        if case .failure(let error) = RequestHeadParser.headLength(endless) { #expect(error.status == 431) } else { Issue.record("no end, no error") }
        #expect(try RequestHeadParser.headLength(Array("GET / HTTP/1.1\r\n\r\nbody".utf8)).get() == 18)
        #expect(try RequestHeadParser.headLength(Array("GET / HTTP/1.1\r\n\r".utf8)).get() == nil)
    }

    @Test func forwardingDropsHopByHopFieldsAndClosesTheConnection() throws {
        let head = try parse("""
            POST http://a.example:8080/up?x=1 HTTP/1.1\r
            Host: evil.example\r
            Proxy-Authorization: Basic Zm9vOmJhcg==\r
            Connection: keep-alive, X-Secret\r
            X-Secret: 1\r
            Keep-Alive: 5\r
            Content-Length: 5\r
            Accept: text/plain\r
            \r

            """).get()
        let forwarded = try ForwardedRequest.make(head, host: "a.example", port: 8080, pathAndQuery: "/up?x=1").get()
        #expect(String(decoding: forwarded.head, as: UTF8.self) == """
            POST /up?x=1 HTTP/1.1\r
            Host: a.example:8080\r
            Content-Length: 5\r
            Accept: text/plain\r
            Connection: close\r
            \r

            """)
        #expect(forwarded.bodyLength == 5)
    }

    @Test func requestBodiesMustBeFramedByOneLength() throws {
        func status(_ fields: String) throws -> Int? {
            let head = try parse("PUT http://a.example/ HTTP/1.1\r\n\(fields)\r\n").get()
            if case .failure(let error) = ForwardedRequest.make(head, host: "a.example", port: 80, pathAndQuery: "/") { return error.status }
            return nil
        }
        #expect(try status("Transfer-Encoding: chunked\r\n") == 411)
        #expect(try status("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n") == 400)
        #expect(try status("Content-Length: 3\r\nContent-Length: 4\r\n") == 400)
        #expect(try status("Content-Length: -1\r\n") == 400)
        #expect(try status("Content-Length: 3, 3\r\n") == nil)
    }

    /// Random heads, and valid ones with random bytes flipped: never a crash, every error a
    /// status the proxy sends, every accepted target one the proxy can name.
    @Test func randomBytesNeverCrashTheParser() {
        var random = SeededGenerator(seed: 0x5EED_E6E5)
        let seeds = ["GET http://a.example/x HTTP/1.1\r\nHost: a\r\n\r\n", "CONNECT b.example:443 HTTP/1.1\r\n\r\n",
                     "POST /v1/x HTTP/1.0\r\nContent-Length: 2\r\n\r\n"]
        for round in 0..<20_000 {
            var bytes = Array(seeds[round % seeds.count].utf8)
            for _ in 0..<(1 + Int(random.next() % 4)) {
                let index = Int(random.next() % UInt64(bytes.count))
                bytes[index] = UInt8(truncatingIfNeeded: random.next())
            }
            switch RequestHeadParser.parse(bytes[...]) {
            case .failure(let error): #expect([400, 414, 431, 505].contains(error.status))
            case .success(let head):
                if case .authority(_, let port) = head.target { #expect(port != 0) }
                #expect(head.fields.count <= RequestHeadParser.maximumFields)
            }
        }
    }
}

/// Origin-form targets as momin serve reads them (RFC 3986 §2.1).
@Suite struct OriginTargetTests {
    @Test func pathsAndQueriesAreDecoded() throws {
        let (path, query) = try #require(OriginTarget.split("/v1/sandboxes/a%2Db/files?path=%2Ftmp%2Fa+b.txt&path=/ignored&flag"))
        #expect(path == "/v1/sandboxes/a-b/files")
        #expect(query == ["path": "/tmp/a b.txt", "flag": ""])
        #expect(OriginTarget.split("/a+b")?.path == "/a+b")  // + is a space in the query only
    }

    @Test func malformedEscapesNULAndBadUTF8AreRefused() {
        for target in ["/a%", "/a%2", "/a%zz", "/a%00b", "/a?x=%00", "/a?%=1", "/%ff%fe", "/?q=%c3"] {
            #expect(OriginTarget.split(target) == nil, "\(target)")
        }
    }
}
