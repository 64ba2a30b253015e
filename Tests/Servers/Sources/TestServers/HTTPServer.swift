import Glibc
import Synchronization

/// What a server does with one request: reads the body if it wants it, answers through the
/// responder. A thrown `HTTPError` before the response starts is answered with its status.
public protocol HTTPHandler: Sendable {
    func handle(_ request: Request, _ responder: Responder) throws
    /// The body of an error response (the openai server answers errors in OpenAI's shape).
    func errorBody(status: Int, message: String) -> (contentType: String, body: [UInt8])
}

extension HTTPHandler {
    public func errorBody(status: Int, message: String) -> (contentType: String, body: [UInt8]) {
        ("text/plain; charset=utf-8", Array("\(status) \(ResponseHead.reason(status)): \(message)\n".utf8))
    }
}

/// Writes one response: the head with Content-Length, or a chunked stream (RFC 9112 §7.1).
public final class Responder {
    let connection: Connection
    let request: RequestHead
    /// Whether the connection ends after this response (the request asked, or the framing
    /// requires it); the response then says `Connection: close` (RFC 9112 §9.6).
    public private(set) var closes: Bool
    public private(set) var started = false
    private var chunked = false

    init(connection: Connection, request: RequestHead) {
        self.connection = connection
        self.request = request
        closes = !request.keepsAlive
    }

    var isHead: Bool { request.method == "HEAD" }

    /// Ends the connection after this response whatever the request asked.
    public func closeAfterResponse() { closes = true }

    /// A whole response with Content-Length (RFC 9110 §8.6); HEAD gets the head only.
    public func send(status: Int, contentType: String, body: [UInt8], fields: [(name: String, value: String)] = []) throws {
        try start(status: status, contentType: contentType, length: UInt64(body.count), fields: fields)
        if !isHead { try connection.write(body) }
    }

    public func send(status: Int, json: JSON, fields: [(name: String, value: String)] = []) throws {
        var body: [UInt8] = []
        json.write(into: &body)
        body.append(0x0A)
        try send(status: status, contentType: "application/json", body: body, fields: fields)
    }

    /// The head of a response whose `length` body bytes the caller writes with `write`.
    public func start(status: Int, contentType: String, length: UInt64, fields: [(name: String, value: String)] = []) throws {
        var all = fields
        all.append(("Content-Type", contentType))
        all.append(("Content-Length", String(length)))
        try writeHead(status: status, fields: all)
    }

    /// The head of a chunked response (RFC 9112 §7.1); an HTTP/1.0 client gets the body
    /// delimited by the connection's close instead (§6.3 item 8).
    public func startChunked(status: Int, contentType: String, fields: [(name: String, value: String)] = []) throws {
        var all = fields
        all.append(("Content-Type", contentType))
        if request.version == "HTTP/1.1" {
            chunked = true
            all.append(("Transfer-Encoding", "chunked"))
        } else {
            closes = true
        }
        try writeHead(status: status, fields: all)
    }

    private func writeHead(status: Int, fields: [(name: String, value: String)]) throws {
        precondition(!started, "one response per request")
        started = true
        var all = fields
        if closes { all.append(("Connection", "close")) }
        try connection.write(ResponseHead(status: status, fields: all).bytes)
    }

    /// Body bytes: raw after `start`, one chunk after `startChunked`.
    public func write(_ bytes: [UInt8]) throws {
        guard !isHead, !bytes.isEmpty else { return }
        if chunked {
            try connection.write(Array("\(String(bytes.count, radix: 16))\r\n".utf8) + bytes + [0x0D, 0x0A])
        } else {
            try connection.write(bytes)
        }
    }

    /// Ends a chunked body: the last chunk and an empty trailer section.
    public func finish() throws {
        if chunked, !isHead { try connection.write("0\r\n\r\n") }
    }
}

/// A listener and a thread per connection; persistent connections (RFC 9112 §9.3) serve one
/// request after another.
public final class HTTPServer: Sendable {
    let listener: Listener
    let handler: any HTTPHandler
    let active = Mutex(0)

    /// The header section's bound; past it the answer is 431 (RFC 6585 §5).
    public static let headerLimit = 64 * 1024
    /// Connections served at once; one more is answered 503 and closed.
    public static let maxConnections = 512
    /// An idle connection is closed after this long without a byte.
    public static let idleSeconds = 120
    /// A body left unread by the handler is drained up to this, so the connection stays usable
    /// and the client does not see a reset before it reads the answer.
    static let drainLimit: UInt64 = 16 << 20

    public init(listener: Listener, handler: any HTTPHandler) {
        self.listener = listener
        self.handler = handler
    }

    public func run() -> Never {
        while true {
            let connection = listener.accept()
            let admitted = active.withLock { count in
                guard count < HTTPServer.maxConnections else { return false }
                count += 1
                return true
            }
            guard admitted else {
                try? connection.write(ResponseHead(status: 503, fields: [("Content-Length", "0"), ("Connection", "close")]).bytes)
                continue
            }
            let box = ConnectionBox(connection)
            do {
                try startThread { [self] in
                    serve(box.take())
                    active.withLock { $0 -= 1 }
                }
            } catch {
                active.withLock { $0 -= 1 }
                printError("momin-test-server: \(error)")
            }
        }
    }

    func serve(_ connection: Connection) {
        connection.setReadTimeout(seconds: HTTPServer.idleSeconds)
        while true {
            var responder: Responder?
            do {
                guard let bytes = try connection.readHead(limit: HTTPServer.headerLimit) else { return }
                let head = try RequestHead.parse(bytes)
                let request = Request(head: head, framing: try BodyFraming(head), connection: connection)
                let answer = Responder(connection: connection, request: head)
                responder = answer
                try handler.handle(request, answer)
                if !answer.started { throw HTTPError(status: 500, "the handler sent no response") }
                if answer.closes { return }
                if !request.bodyConsumed {
                    // RFC 9110 §10.1.1: after a final answer, a client waiting for 100 may never
                    // send the body; and a 100 after the answer is wrong. Close instead.
                    guard !request.waitsForContinue, case let .length(length) = request.framing,
                          length <= HTTPServer.drainLimit else { return }
                    _ = try request.readBody { _ in }
                }
            } catch let error as HTTPError {
                if responder?.started != true {
                    let (contentType, body) = handler.errorBody(status: error.status, message: error.message)
                    let head = ResponseHead(status: error.status, fields: [
                        ("Content-Type", contentType), ("Content-Length", String(body.count)), ("Connection", "close"),
                    ])
                    try? connection.write(head.bytes + body)
                }
                return
            } catch {
                return
            }
        }
    }
}

/// Hands a connection to its thread (the thread's closure must be Sendable; the connection
/// is used by that thread alone).
final class ConnectionBox: @unchecked Sendable {
    private var connection: Connection?
    init(_ connection: Connection) { self.connection = connection }
    func take() -> Connection {
        defer { connection = nil }
        return connection!
    }
}

/// One line on stderr.
public func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// Sleeps `milliseconds`, resuming after signals.
public func sleep(milliseconds: Int) {
    var request = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0, errno == EINTR { request = remaining }
}
