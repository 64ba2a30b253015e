import Glibc
import HTTPWire
import POSIX

/// One client connection of the API server, HTTP/1.1 (RFC 9112) over a stream socket: request
/// heads parsed by HTTPWire's strict, bounded parser, bodies framed only by Content-Length, and
/// responses either with a length or chunked (§7.1) for streams. Keep-alive: requests are
/// read one after another until the client closes or asks to.
final class HTTPConnection {
    let fd: Int32
    /// Bytes read past the last head or body, the start of what comes next.
    private var pending: [UInt8] = []
    /// Set once the connection must close after the current response (the client asked, or a
    /// body was left unread).
    private(set) var closing = false

    /// How long a client has to send a whole head once it has started, or to start the next one.
    static let headSeconds = 30.0
    /// How long a body may go without a byte.
    static let bodyIdleSeconds = 60.0

    /// How long a response may take to go out before the client is given up on: a client that
    /// stops reading must not hold a thread (shorter for refusals on the accepting thread).
    let sendSeconds: Double

    init(fd: Int32, sendSeconds: Double = 60) {
        self.fd = fd
        self.sendSeconds = sendSeconds
    }

    /// A request's head and where its body stands.
    struct Request {
        var method: String
        var path: String
        var query: [String: String]
        var head: RequestHead
        /// The body's length (Content-Length; 0 when there is none).
        var bodyLength: UInt64
    }

    enum Next {
        case request(Request)
        /// The client closed between requests, or never sent one in time: nothing to answer.
        case closed
        /// A head that could not be taken: answer it, then close.
        case refused(Problem)
    }

    /// Reads the next request's head.
    func next() -> Next {
        let deadline = MonotonicClock.deadline(after: Self.headSeconds)
        var end: Int?
        while true {
            switch RequestHeadParser.headLength(pending) {
            case .success(let found): end = found
            case .failure(let error): return .refused(Problem(status: error.status, title: "bad request head", detail: error.description))
            }
            if end != nil { break }
            guard let chunk = receive(until: deadline) else {
                return pending.isEmpty ? .closed : .refused(Problem(status: 408, title: "request timeout",
                                                                    detail: "the request head did not arrive within \(Int(Self.headSeconds)) s"))
            }
            if chunk.isEmpty { return .closed }
            pending += chunk
        }
        let length = end!
        let head: RequestHead
        switch RequestHeadParser.parse(pending[0..<length]) {
        case .success(let parsed): head = parsed
        case .failure(let error): return .refused(Problem(status: error.status, title: "bad request head", detail: error.description))
        }
        pending.removeFirst(length)
        guard case .origin(let pathAndQuery) = head.target else {
            return .refused(Problem(status: 400, title: "bad request target", detail: "the target must be a path (origin form, RFC 9112 §3.2.1)"))
        }
        if !head.values(of: "Transfer-Encoding").isEmpty {
            return .refused(Problem(status: 411, title: "length required",
                                    detail: "request bodies are framed by Content-Length only; Transfer-Encoding is not accepted"))
        }
        let lengths = head.values(of: "Content-Length")
        var bodyLength: UInt64 = 0
        if let text = lengths.first {
            guard lengths.count == 1, (1...19).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let value = UInt64(text) else {
                return .refused(Problem(status: 400, title: "bad Content-Length", detail: "Content-Length must be one run of at most 19 digits"))
            }
            bodyLength = value
        }
        let connection = head.values(of: "Connection").joined(separator: ",").lowercased()
        if head.version == "HTTP/1.0" || connection.split(separator: ",").contains(where: { $0.trimmingSpaces == "close" }) { closing = true }
        guard case let (path, query)? = OriginTarget.split(pathAndQuery) else {
            return .refused(Problem(status: 400, title: "bad request target", detail: "the path or query has a malformed %-escape"))
        }
        return .request(Request(method: head.method, path: path, query: query, head: head, bodyLength: bodyLength))
    }

    /// The whole body, when it is at most `limit` bytes; a longer one is refused unread (and the
    /// connection closes after the answer, as its bytes are still on the way).
    func body(_ request: Request, limit: Int) throws(Problem) -> [UInt8] {
        guard request.bodyLength <= UInt64(limit) else {
            closing = true
            throw Problem(status: 413, title: "content too large", detail: "the request body is \(request.bodyLength) bytes; at most \(limit) are taken here")
        }
        var body: [UInt8] = []
        body.reserveCapacity(Int(request.bodyLength))
        try streamBody(request) { body += $0 }
        return body
    }

    /// Passes the body on as it arrives, in pieces.
    func streamBody(_ request: Request, _ piece: ([UInt8]) -> Void) throws(Problem) {
        var left = request.bodyLength
        let take = min(UInt64(pending.count), left)
        if take > 0 {
            piece(Array(pending[0..<Int(take)]))
            pending.removeFirst(Int(take))
            left -= take
        }
        while left > 0 {
            guard let chunk = receive(until: MonotonicClock.deadline(after: Self.bodyIdleSeconds), limit: Int(min(left, 64 << 10))), !chunk.isEmpty else {
                closing = true
                throw Problem(status: 408, title: "request timeout", detail: "the body stopped with \(left) of \(request.bodyLength) bytes to come")
            }
            left -= UInt64(chunk.count)
            piece(chunk)
        }
    }

    /// Marks a body that was not read: its bytes cannot be told from the next request's.
    func abandonBody(_ request: Request) {
        if request.bodyLength > 0 { closing = true }
    }

    // MARK: Responses

    /// A whole response with a body of known length.
    func respond(status: Int, contentType: String?, body: [UInt8], fields: [(String, String)] = []) {
        var text = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
        if let contentType { text += "Content-Type: \(contentType)\r\n" }
        for (name, value) in fields { text += "\(name): \(value)\r\n" }
        text += "Content-Length: \(body.count)\r\n"
        if closing { text += "Connection: close\r\n" }
        send(Array((text + "\r\n").utf8) + body)
    }

    func respond(_ problem: Problem, fields: [(String, String)] = []) {
        respond(status: problem.status, contentType: "application/problem+json", body: problem.json(), fields: fields)
    }

    /// Answers with `problem` and ends the connection.
    func respondAndClose(_ problem: Problem, fields: [(String, String)] = []) {
        closing = true
        respond(problem, fields: fields)
    }

    /// Ends a response that cannot be finished: the connection is cut without the last chunk,
    /// which a client reads as a failed transfer (RFC 9112 §8).
    func cut() {
        closing = true
        gone = true
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Starts a chunked response (RFC 9112 §7.1); `chunk` sends its pieces and `finish` ends it.
    func startChunked(status: Int, contentType: String) {
        var text = "HTTP/1.1 \(status) \(Self.reason(status))\r\nContent-Type: \(contentType)\r\nTransfer-Encoding: chunked\r\n"
        if closing { text += "Connection: close\r\n" }
        send(Array((text + "\r\n").utf8))
    }

    func chunk(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        send(Array((String(bytes.count, radix: 16) + "\r\n").utf8) + bytes + [0x0D, 0x0A])
    }

    func finishChunked() { send(Array("0\r\n\r\n".utf8)) }

    /// Whether the client has gone (its side closed or the connection failed): a write failed.
    private(set) var gone = false

    private func send(_ bytes: [UInt8]) {
        guard !gone else { return }
        do { try FileIO.sendAll(fd, bytes, until: MonotonicClock.deadline(after: sendSeconds)) } catch {
            gone = true
            closing = true
        }
    }

    /// Up to `limit` bytes, empty at the end of the stream, nil when the deadline passed or the read failed.
    private func receive(until deadline: UInt64, limit: Int = 16 << 10) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: limit)
        while true {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, MonotonicClock.pollTimeout(until: deadline))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return nil }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            return Array(buffer[0..<n])
        }
    }

    /// The reason phrases of the statuses this server sends (RFC 9110 §15).
    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 204: "No Content"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Content"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Status \(status)"
        }
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var text = self
        while text.first == " " || text.first == "\t" { text.removeFirst() }
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return text
    }
}
