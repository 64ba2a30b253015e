import Crypto
@testable import Egress
import Merkle
import Testing

/// The body digest an apt `.deb` is logged with: whatever way the body is framed and however the
/// stream is split, only a whole 200 body counts.
@Suite struct ResponseBodyDigestTests {
    static func digest(_ stream: String, method: String = "GET", pieces: Int = 1, cleanEnd: Bool = true) -> (size: UInt64, sha256: String)? {
        var digest = ResponseBodyDigest(requestMethod: method)
        let bytes = Array(stream.utf8)
        let step = max(1, bytes.count / pieces)
        var start = 0
        while start < bytes.count {
            Array(bytes[start..<min(bytes.count, start + step)]).withUnsafeBytes { digest.feed($0) }
            start += step
        }
        return digest.result(endedCleanly: cleanEnd).map { ($0.size, $0.sha256.hex) }
    }

    static func sha(_ text: String) -> String { Hex.encode(SHA256.hash(data: Array(text.utf8))) }

    @Test(arguments: [1, 3, 7, 1000]) func bodiesAreDigestedWithoutTheirHeadOrChunking(pieces: Int) {
        let plain = Self.digest("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world", pieces: pieces)
        #expect(plain?.size == 11 && plain?.sha256 == Self.sha("hello world"))
        let chunked = Self.digest("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n", pieces: pieces)
        #expect(chunked?.sha256 == Self.sha("hello world"))
        let untilClose = Self.digest("HTTP/1.1 200 OK\r\n\r\nhello world", pieces: pieces)
        #expect(untilClose?.size == 11 && untilClose?.sha256 == Self.sha("hello world"))
    }

    @Test func partialFailedOrBodilessResponsesHaveNoDigest() {
        #expect(Self.digest("HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nhello world") == nil)
        #expect(Self.digest("HTTP/1.1 200 OK\r\n\r\nhello world", cleanEnd: false) == nil)
        #expect(Self.digest("HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!") == nil)
        #expect(Self.digest("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n") == nil)
        #expect(Self.digest("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", method: "HEAD")?.size == 0)
        #expect(Self.digest("not http at all\r\n\r\n") == nil)
    }
}
