import Glibc
import Testing
@testable import TestServers

@Suite struct HTTPTests {
    @Test func parsesAHead() throws {
        let head = try RequestHead.parse(Array("\r\nPOST http://h:8/echo/a?x=1&y HTTP/1.1\r\nHost: h\r\nX-A:  v \r\nx-a: w\r\n\r\n".utf8))
        #expect(head.method == "POST" && head.path == "/echo/a" && head.query == "x=1&y")
        #expect(head.target == "http://h:8/echo/a?x=1&y")
        #expect(head.field("X-A") == "v" && head.fieldValues("x-a") == ["v", "w"])
        #expect(head.queryValue("y") == "" && head.queryValue("x") == "1")
        #expect(head.keepsAlive)
    }

    @Test(arguments: [
        ("GET /\r\n\r\n", 400), ("GET / HTTP/2.0\r\n\r\n", 505), ("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400), ("GET  / HTTP/1.1\r\n\r\n", 400), ("GET x HTTP/1.1\r\n\r\n", 400),
    ])
    func refusesBadHeads(_ text: String, _ status: Int) {
        #expect(throws: HTTPError.self) { try RequestHead.parse(Array(text.utf8)) }
        do { _ = try RequestHead.parse(Array(text.utf8)) } catch { #expect(error.status == status) }
    }

    @Test func framing() throws {
        func framing(_ fields: String) throws(HTTPError) -> BodyFraming {
            try BodyFraming(try RequestHead.parse(Array("POST / HTTP/1.1\r\n\(fields)\r\n".utf8)))
        }
        #expect(try framing("") == .none)
        #expect(try framing("Content-Length: 5\r\nContent-Length: 5\r\n") == .length(5))
        #expect(try framing("Transfer-Encoding: chunked\r\n") == .chunked)
        #expect(throws: HTTPError.self) { try framing("Content-Length: 5\r\nContent-Length: 6\r\n") }
        #expect(throws: HTTPError.self) { try framing("Content-Length: -1\r\n") }
        #expect(throws: HTTPError.self) { try framing("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n") }
        #expect(throws: HTTPError.self) { try framing("Transfer-Encoding: gzip, chunked\r\n") }
    }

    /// A chunked body larger than the read buffer, with LFs in its data, written from another
    /// thread in odd-sized pieces: every chunk line is found where it is.
    @Test func chunkedBodyAcrossBufferRefills() throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let data = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7919 >> 3) }
        var wire = Array("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        var at = 0
        for size in [70_001, 1, 100_000, 129_998] {
            wire += Array("\(String(size, radix: 16));x=y\r\n".utf8) + data[at..<(at + size)] + [0x0D, 0x0A]
            at += size
        }
        wire += Array("0\r\nX-T: 1\r\n\r\n".utf8)
        let writer = Connection(fd: fds[1])
        let pieces = stride(from: 0, to: wire.count, by: 9_973).map { Array(wire[$0..<min($0 + 9_973, wire.count)]) }
        let box = ConnectionBox(writer)
        try startThread { let w = box.take(); for piece in pieces { try? w.write(piece) } }
        let reader = Connection(fd: fds[0])
        let head = try RequestHead.parse(try #require(try reader.readHead(limit: 65536)))
        let request = Request(head: head, framing: try BodyFraming(head), connection: reader)
        var hasher = SHA256()
        let length = try request.readBody { hasher.update($0) }
        #expect(length == 300_000)
        #expect(hasher.finalizeHex() == SHA256.hex(data))
        #expect(request.trailers.map(\.name) == ["X-T"])
    }
}
