/// An HTTP/1.1 request head as a forward proxy receives it (RFC 9112 §3, §5), parsed from bytes
/// with every bound checked before anything is kept. Pure; no I/O.
///
/// The parser is strict where leniency lets two readers see two different requests (request
/// smuggling): lines end in CRLF only, no whitespace before a field's colon (§5.1), no obsolete
/// line folding (§5.2), a Content-Length that is one run of digits, never both Content-Length and
/// Transfer-Encoding (§6.3).
public struct RequestHead: Sendable, Equatable {
    public var method: String
    public var target: RequestTarget
    /// "HTTP/1.1" or "HTTP/1.0".
    public var version: String
    public var fields: [HeaderField]

    /// The value of the first field named `name` (names compare without case, RFC 9110 §5.1).
    public func value(of name: String) -> String? {
        fields.first { $0.isNamed(name) }?.value
    }

    /// Every value of fields named `name`, in order.
    public func values(of name: String) -> [String] {
        fields.filter { $0.isNamed(name) }.map(\.value)
    }
}

public struct HeaderField: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    public func isNamed(_ other: String) -> Bool { Self.equalIgnoringASCIICase(name, other) }

    /// Field names and host names compare without ASCII case (RFC 9110 §5.1, RFC 4343).
    public static func equalIgnoringASCIICase(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count && zip(a.utf8, b.utf8).allSatisfy { lower($0) == lower($1) }
    }

    static func lower(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }
}

/// The request target's forms (RFC 9112 §3.2).
public enum RequestTarget: Sendable, Equatable {
    /// `/path?query` (§3.2.1), what a client sends to a server it reaches directly.
    case origin(pathAndQuery: String)
    /// `http://host[:port]/path?query` (§3.2.2), what a client sends to a proxy.
    case absolute(host: String, port: UInt16, pathAndQuery: String)
    /// `host:port` (§3.2.3), CONNECT's only form.
    case authority(host: String, port: UInt16)
}

/// Why a head was refused; `status` is the response the proxy sends for it.
public struct RequestHeadError: Error, Sendable, Equatable, CustomStringConvertible {
    public let status: Int
    public let description: String

    init(_ status: Int, _ description: String) {
        self.status = status
        self.description = description
    }
}

public enum RequestHeadParser {
    /// The most bytes a head may take, request line and fields (431 past it, RFC 6585 §5).
    public static let maximumHeadBytes = 16 << 10
    /// The longest request target (414 past it, RFC 9110 §15.5.15).
    public static let maximumTargetBytes = 8 << 10
    public static let maximumFields = 100

    /// Where the head ends in `bytes` (the index just past its blank line), nil when it has not
    /// ended yet; an error once `maximumHeadBytes` have come without an end.
    public static func headLength(_ bytes: some Collection<UInt8>) -> Result<Int?, RequestHeadError> {
        HeadLines.end(bytes, maximum: maximumHeadBytes, what: "request").mapError(error)
    }

    /// Parses a whole head: `bytes` ends with its blank line (as `headLength` found it).
    public static func parse(_ bytes: ArraySlice<UInt8>) -> Result<RequestHead, RequestHeadError> {
        let lines: [ArraySlice<UInt8>]
        switch HeadLines.split(bytes, maximum: maximumHeadBytes, what: "request") {
        case .success(let split): lines = split
        case .failure(let problem): return .failure(error(problem))
        }
        guard let requestLine = lines.first else { return .failure(RequestHeadError(400, "no request line")) }
        guard lines.count - 1 <= maximumFields else {
            return .failure(RequestHeadError(431, "more than \(maximumFields) header fields"))
        }
        return parseRequestLine(requestLine).flatMap { method, target, version in
            var fields: [HeaderField] = []
            for line in lines.dropFirst() {
                switch parseField(line) {
                case .success(let field): fields.append(field)
                case .failure(let error): return .failure(error)
                }
            }
            return .success(RequestHead(method: method, target: target, version: version, fields: fields))
        }
    }

    /// A shared head problem as the proxy answers it: 431 for a head too long, 400 otherwise.
    static func error(_ problem: HeadProblem) -> RequestHeadError {
        RequestHeadError(problem.kind == .tooLong ? 431 : 400, problem.message)
    }

    /// request-line = method SP request-target SP HTTP-version (RFC 9112 §3).
    static func parseRequestLine(_ line: ArraySlice<UInt8>) -> Result<(String, RequestTarget, String), RequestHeadError> {
        let parts = line.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(RequestHeadError(400, "the request line is not METHOD TARGET VERSION separated by single spaces")) }
        let method = parts[0], target = parts[1], version = parts[2]
        guard (1...20).contains(method.count), method.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
            return .failure(RequestHeadError(400, "the method is not 1 to 20 uppercase letters"))
        }
        let versionText = String(decoding: version, as: UTF8.self)
        guard versionText == "HTTP/1.1" || versionText == "HTTP/1.0" else {
            return .failure(RequestHeadError(505, "HTTP version \(printable(version)) is not spoken here (HTTP/1.1 or HTTP/1.0)"))
        }
        guard target.count <= maximumTargetBytes else { return .failure(RequestHeadError(414, "the request target is longer than \(maximumTargetBytes) bytes")) }
        guard !target.isEmpty, target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(RequestHeadError(400, "the request target is empty or has control, space or non-ASCII bytes"))
        }
        let methodText = String(decoding: method, as: UTF8.self)
        let parsed: Result<RequestTarget, RequestHeadError>
        if methodText == "CONNECT" {
            parsed = authority(target, requirePort: true).map { .authority(host: $0.host, port: $0.port) }
        } else if target.first == UInt8(ascii: "/") {
            parsed = pathAndQuery(target).map { .origin(pathAndQuery: $0) }
        } else {
            parsed = absolute(target)
        }
        return parsed.map { (methodText, $0, versionText) }
    }

    /// A URL as a proxy's absolute-form target: `http://host[:port][/path[?query]]`.
    public static func absoluteTarget(_ text: String) -> Result<RequestTarget, RequestHeadError> {
        let bytes = Array(text.utf8)
        guard bytes.count <= maximumTargetBytes, bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(RequestHeadError(400, "the URL is longer than \(maximumTargetBytes) bytes or has spaces, control or non-ASCII bytes"))
        }
        return absolute(bytes[...])
    }

    /// `host:port`, CONNECT's target.
    public static func authorityTarget(_ text: String) -> Result<RequestTarget, RequestHeadError> {
        authority(Array(text.utf8)[...], requirePort: true).map { .authority(host: $0.host, port: $0.port) }
    }

    /// `http://authority[/path[?query]]`; no user information, no fragment.
    static func absolute(_ target: ArraySlice<UInt8>) -> Result<RequestTarget, RequestHeadError> {
        let prefix = Array("http://".utf8)
        let lowered = target.prefix(prefix.count).map(HeaderField.lower)
        guard lowered == prefix else {
            if target.prefix(8).map(HeaderField.lower) == Array("https://".utf8) {
                return .failure(RequestHeadError(400, "an https:// request target: TLS goes through CONNECT host:443"))
            }
            return .failure(RequestHeadError(400, "the request target is neither http://host/path, /path, nor host:port for CONNECT"))
        }
        let rest = target.dropFirst(prefix.count)
        let slash = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? rest.endIndex
        return authority(rest[..<slash], requirePort: false).flatMap { host, port in
            let tail = rest[slash...]
            if tail.isEmpty { return .success(.absolute(host: host, port: port, pathAndQuery: "/")) }
            guard tail.first == UInt8(ascii: "/") else { return .failure(RequestHeadError(400, "the request target's path does not start with \"/\"")) }
            return pathAndQuery(tail).map { .absolute(host: host, port: port, pathAndQuery: $0) }
        }
    }

    static func pathAndQuery(_ bytes: ArraySlice<UInt8>) -> Result<String, RequestHeadError> {
        guard !bytes.contains(UInt8(ascii: "#")) else { return .failure(RequestHeadError(400, "the request target has a fragment")) }
        return .success(String(decoding: bytes, as: UTF8.self))
    }

    /// `host[:port]` with host a name, a dotted IPv4 address, or `[IPv6]` (RFC 3986 §3.2.2);
    /// the name is returned as written (the policy normalises and judges it).
    static func authority(_ bytes: ArraySlice<UInt8>, requirePort: Bool) -> Result<(host: String, port: UInt16), RequestHeadError> {
        guard !bytes.isEmpty else { return .failure(RequestHeadError(400, "the request target has no host")) }
        guard !bytes.contains(UInt8(ascii: "@")) else {
            return .failure(RequestHeadError(400, "the request target has user information (user@host)"))
        }
        var host = bytes
        var portText: ArraySlice<UInt8>?
        if bytes.first == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")) else { return .failure(RequestHeadError(400, "an unclosed \"[\" in the host")) }
            host = bytes[(bytes.startIndex + 1)..<close]
            let after = bytes[(close + 1)...]
            if !after.isEmpty {
                guard after.first == UInt8(ascii: ":") else { return .failure(RequestHeadError(400, "text after \"]\" that is not a port")) }
                portText = after.dropFirst()
            }
        } else if let colon = bytes.firstIndex(of: UInt8(ascii: ":")) {
            host = bytes[..<colon]
            portText = bytes[(colon + 1)...]
        }
        guard !host.isEmpty, host.count <= 255 else { return .failure(RequestHeadError(400, "the host is empty or longer than 255 bytes")) }
        guard host.allSatisfy({ isHostByte($0) }) else { return .failure(RequestHeadError(400, "the host \(printable(host)) has characters no host name or address has")) }
        var port: UInt16 = 80
        if let portText {
            guard (1...5).contains(portText.count), portText.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let value = UInt16(String(decoding: portText, as: UTF8.self)), value != 0
            else { return .failure(RequestHeadError(400, "the port is not a whole number from 1 to 65535")) }
            port = value
        } else if requirePort {
            return .failure(RequestHeadError(400, "CONNECT needs host:port (RFC 9110 §9.3.6)"))
        }
        return .success((String(decoding: host, as: UTF8.self), port))
    }

    static func isHostByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "_")
    }

    /// field-line = field-name ":" OWS field-value OWS (RFC 9112 §5).
    static func parseField(_ line: ArraySlice<UInt8>) -> Result<HeaderField, RequestHeadError> {
        HeadLines.field(line).mapError(error)
    }

    /// tchar (RFC 9110 §5.6.2).
    static func isTokenByte(_ byte: UInt8) -> Bool { HeadLines.isTokenByte(byte) }

    /// Bytes for an error message: printable ASCII as is, others as `\xHH`, at most 64.
    static func printable(_ bytes: some Collection<UInt8>) -> String { HeadLines.printable(bytes) }
}
