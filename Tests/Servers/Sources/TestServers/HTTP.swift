/// A request the server answers with an error status and then closes the connection.
public struct HTTPError: Error, CustomStringConvertible {
    public let status: Int
    public let message: String
    public init(status: Int, _ message: String) {
        self.status = status
        self.message = message
    }
    public var description: String { "\(status) \(message)" }
}

/// A request's line and header section (RFC 9112 §2.1, §3, §5).
public struct RequestHead: Sendable {
    public var method: String
    /// The request-target as sent (origin-form, or absolute-form as a proxy would get it).
    public var target: String
    /// The target's path and query; for absolute-form, the part after the authority.
    public var path: String
    public var query: String?
    public var version: String
    /// The fields in order, names as sent; duplicates kept.
    public var fields: [(name: String, value: String)]

    /// The first field named `name` (case-insensitive, RFC 9110 §5.1).
    public func field(_ name: String) -> String? {
        let lower = name.lowercased()
        return fields.first { $0.name.lowercased() == lower }?.value
    }

    /// Every value of `name`, combined as a list (RFC 9110 §5.3).
    public func fieldValues(_ name: String) -> [String] {
        let lower = name.lowercased()
        return fields.filter { $0.name.lowercased() == lower }
            .flatMap { $0.value.split(separator: ",") }
            .map { trimmed(String($0)) }
            .filter { !$0.isEmpty }
    }

    /// RFC 9112 §9.3: HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 closes unless
    /// `Connection: keep-alive`.
    public var keepsAlive: Bool {
        let options = fieldValues("Connection").map { $0.lowercased() }
        if options.contains("close") { return false }
        return version == "HTTP/1.1" || options.contains("keep-alive")
    }

    /// Parses a header section as `Connection.readHead` returns it.
    public static func parse(_ bytes: [UInt8]) throws(HTTPError) -> RequestHead {
        var lines: [[UInt8]] = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            line.last == 0x0D ? Array(line.dropLast()) : Array(line)
        }
        // §2.2: empty lines before the request-line are ignored.
        while lines.first?.isEmpty == true { lines.removeFirst() }
        guard let requestLine = lines.first, !requestLine.isEmpty else { throw HTTPError(status: 400, "no request line") }
        guard requestLine.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            throw HTTPError(status: 400, "the request line has a byte that is not visible ASCII")
        }
        // §3: method SP request-target SP HTTP-version, single spaces.
        let parts = requestLine.split(separator: 0x20, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty,
              parts[0].utf8.allSatisfy(isTokenByte) else {
            throw HTTPError(status: 400, "the request line is not 'METHOD TARGET HTTP/1.1'")
        }
        let version = parts[2]
        guard version.hasPrefix("HTTP/"), version.count == 8 else { throw HTTPError(status: 400, "bad HTTP version '\(version)'") }
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { throw HTTPError(status: 505, "\(version) is not served") }

        var fields: [(name: String, value: String)] = []
        for line in lines.dropFirst() where !line.isEmpty {
            // §5.2: obsolete line folding may be rejected with 400.
            if line.first == 0x20 || line.first == 0x09 { throw HTTPError(status: 400, "obsolete line folding") }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw HTTPError(status: 400, "a field line has no ':'") }
            let name = line[..<colon]
            // §5.1: no whitespace between the field name and the colon.
            guard !name.isEmpty, name.allSatisfy(isTokenByte) else {
                throw HTTPError(status: 400, "bad field name '\(String(decoding: name, as: UTF8.self))'")
            }
            let value = line[(colon + 1)...]
            guard !value.contains(where: { $0 == 0 || $0 == 0x0D || $0 == 0x0A }) else {
                throw HTTPError(status: 400, "a field value holds NUL, CR or LF")
            }
            fields.append((String(decoding: name, as: UTF8.self), trimmed(String(decoding: value, as: UTF8.self))))
        }

        let target = parts[1]
        var pathAndQuery = target
        // §3.2.2: a server accepts absolute-form; what follows the authority is the path.
        let lowered = target.lowercased()
        if lowered.hasPrefix("http://") || lowered.hasPrefix("https://") {
            let afterAuthority = target.dropFirst(lowered.hasPrefix("http://") ? 7 : 8)
            pathAndQuery = afterAuthority.firstIndex(of: "/").map { String(afterAuthority[$0...]) } ?? "/"
        } else if !target.hasPrefix("/") && !(target == "*" && parts[0] == "OPTIONS") && parts[0] != "CONNECT" {
            throw HTTPError(status: 400, "request-target '\(target)' is not origin-form or absolute-form")
        }
        var path = pathAndQuery
        var query: String?
        if let mark = pathAndQuery.firstIndex(of: "?") {
            path = String(pathAndQuery[..<mark])
            query = String(pathAndQuery[pathAndQuery.index(after: mark)...])
        }
        return RequestHead(method: parts[0], target: target, path: path, query: query, version: version, fields: fields)
    }

    /// The value of `name` in the query string (`a=1&b=2`), undecoded.
    public func queryValue(_ name: String) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if kv.first.map(String.init) == name { return kv.count == 2 ? String(kv[1]) : "" }
        }
        return nil
    }
}

/// RFC 9110 §5.6.2 tchar.
func isTokenByte(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return Array("!#$%&'*+-.^_`|~".utf8).contains(b)
    }
}

/// Without leading and trailing spaces and tabs (RFC 9110 §5.6.3 OWS).
func trimmed(_ s: String) -> String {
    let bytes = Array(s.utf8)
    guard let first = bytes.firstIndex(where: { $0 != 0x20 && $0 != 0x09 }),
          let last = bytes.lastIndex(where: { $0 != 0x20 && $0 != 0x09 }) else { return "" }
    return String(decoding: bytes[first...last], as: UTF8.self)
}

/// How a request's body is framed (RFC 9112 §6.3).
public enum BodyFraming: Equatable, Sendable {
    case none
    case length(UInt64)
    case chunked

    /// §6.1–§6.3: chunked must be the final coding and the only one here (501 otherwise);
    /// Transfer-Encoding with Content-Length, or differing Content-Lengths, are 400.
    public init(_ head: RequestHead) throws(HTTPError) {
        let codings = head.fieldValues("Transfer-Encoding").map { $0.lowercased() }
        let lengths = head.fieldValues("Content-Length")
        if !codings.isEmpty {
            guard lengths.isEmpty else { throw HTTPError(status: 400, "both Transfer-Encoding and Content-Length") }
            guard head.version == "HTTP/1.1" else { throw HTTPError(status: 400, "Transfer-Encoding in an HTTP/1.0 request") }
            guard codings == ["chunked"] else { throw HTTPError(status: 501, "transfer coding '\(codings.joined(separator: ", "))' is not supported") }
            self = .chunked
            return
        }
        guard let first = lengths.first else { self = .none; return }
        guard lengths.allSatisfy({ $0 == first }), first.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              first.utf8.count <= 18, let length = UInt64(first) else {
            throw HTTPError(status: 400, "bad Content-Length '\(lengths.joined(separator: ", "))'")
        }
        self = .length(length)
    }
}

/// A request whose head has been read; the body is read on demand, once.
public final class Request {
    public let head: RequestHead
    public let framing: BodyFraming
    public private(set) var trailers: [(name: String, value: String)] = []
    let connection: Connection
    private var bodyRead = false
    private var sentContinue = false

    static let chunkLineLimit = 4096
    static let trailerLimit = 64 * 1024

    init(head: RequestHead, framing: BodyFraming, connection: Connection) {
        self.head = head
        self.framing = framing
        self.connection = connection
        if framing == .none { bodyRead = true }
    }

    /// Whether the whole body has been consumed (else the connection cannot be reused).
    var bodyConsumed: Bool { bodyRead }

    /// The client sent `Expect: 100-continue` and may hold the body back until told to send it.
    var waitsForContinue: Bool {
        head.version == "HTTP/1.1" && head.field("Expect")?.lowercased() == "100-continue"
    }

    /// Streams the body to `sink` and returns its length. RFC 9110 §10.1.1: a client that sent
    /// `Expect: 100-continue` gets the interim response first.
    public func readBody(into sink: (ArraySlice<UInt8>) throws -> Void) throws -> UInt64 {
        precondition(!bodyRead || framing == .none, "the body is read once")
        bodyRead = true
        if framing != .none, !sentContinue, waitsForContinue {
            sentContinue = true
            try connection.write("HTTP/1.1 100 Continue\r\n\r\n")
        }
        switch framing {
        case .none: return 0
        case let .length(length):
            try connection.read(count: length, into: sink)
            return length
        case .chunked:
            return try readChunked(into: sink)
        }
    }

    /// The body in memory, refused with 413 past `limit` bytes.
    public func body(limit: Int) throws -> [UInt8] {
        if case let .length(length) = framing, length > UInt64(limit) {
            throw HTTPError(status: 413, "the body is \(length) bytes, over the \(limit) this server takes")
        }
        var bytes: [UInt8] = []
        _ = try readBody { piece in
            guard bytes.count + piece.count <= limit else {
                throw HTTPError(status: 413, "the body is over the \(limit) bytes this server takes")
            }
            bytes += piece
        }
        return bytes
    }

    /// RFC 9112 §7.1: chunk-size [chunk-ext] CRLF chunk-data CRLF ... last-chunk trailer-section
    /// CRLF. Extensions are ignored (§7.1.1); trailer fields are kept apart (§7.1.2).
    private func readChunked(into sink: (ArraySlice<UInt8>) throws -> Void) throws -> UInt64 {
        var total: UInt64 = 0
        while true {
            let line = try connection.readLine(limit: Request.chunkLineLimit)
            let sizeDigits = line.prefix { isHexDigit($0) }
            let rest = line.dropFirst(sizeDigits.count).drop { $0 == 0x20 || $0 == 0x09 }
            guard !sizeDigits.isEmpty, sizeDigits.count <= 15, rest.isEmpty || rest.first == UInt8(ascii: ";"),
                  let size = UInt64(String(decoding: sizeDigits, as: UTF8.self), radix: 16) else {
                throw HTTPError(status: 400, "bad chunk size line '\(String(decoding: line.prefix(40), as: UTF8.self))'")
            }
            if size == 0 { break }
            try connection.read(count: size, into: sink)
            total += size
            guard try connection.readLine(limit: 2).isEmpty else { throw HTTPError(status: 400, "chunk data not followed by CRLF") }
        }
        var trailerBytes = 0
        while true {
            let line = try connection.readLine(limit: Request.trailerLimit)
            if line.isEmpty { break }
            trailerBytes += line.count
            guard trailerBytes <= Request.trailerLimit else { throw HTTPError(status: 431, "the trailer section is over \(Request.trailerLimit) bytes") }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { throw HTTPError(status: 400, "a trailer line has no ':'") }
            trailers.append((String(decoding: line[..<colon], as: UTF8.self), trimmed(String(decoding: line[(colon + 1)...], as: UTF8.self))))
        }
        return total
    }
}

func isHexDigit(_ b: UInt8) -> Bool {
    (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
}

/// A response's status line and fields, written before its body.
public struct ResponseHead {
    public var status: Int
    public var fields: [(name: String, value: String)]

    public init(status: Int, fields: [(name: String, value: String)] = []) {
        self.status = status
        self.fields = fields
    }

    /// RFC 9112 §4: HTTP-version SP status-code SP reason-phrase CRLF, then the fields.
    var bytes: [UInt8] {
        var text = "HTTP/1.1 \(status) \(ResponseHead.reason(status))\r\n"
        for field in fields { text += "\(field.name): \(field.value)\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }

    /// RFC 9110 §15 reason phrases for the codes these servers send.
    static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 301: return "Moved Permanently"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 413: return "Content Too Large"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large" // RFC 6585 §5
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status"
        }
    }
}
