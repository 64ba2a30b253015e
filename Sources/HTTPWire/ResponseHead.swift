/// An HTTP/1.1 response head as a relay reads it from a server it does not trust (RFC 9112 §4,
/// §5, §6.3), with the same strict line and field rules as `RequestHeadParser`, and the body's
/// framing decided once, here, so that the relay and the guest cannot read two different bodies.
public struct ResponseHead: Sendable, Equatable {
    /// 100 to 599 (RFC 9110 §15).
    public var status: Int
    /// The reason phrase, possibly empty; a client ignores it (RFC 9112 §4).
    public var reason: String
    /// "HTTP/1.1" or "HTTP/1.0".
    public var version: String
    public var fields: [HeaderField]
    /// How the body that follows the head is delimited.
    public var framing: BodyFraming

    /// The value of the first field named `name` (names compare without case, RFC 9110 §5.1).
    public func value(of name: String) -> String? {
        fields.first { $0.isNamed(name) }?.value
    }

    /// Every value of fields named `name`, in order.
    public func values(of name: String) -> [String] {
        fields.filter { $0.isNamed(name) }.map(\.value)
    }
}

/// How a response's body is delimited (RFC 9112 §6.3).
public enum BodyFraming: Equatable, Sendable {
    /// No body: a 1xx, 204 or 304 response, a response to HEAD (rules 1, 2), or a 2xx to
    /// CONNECT, after which the connection is a tunnel.
    case none
    /// Exactly this many bytes (rule 6).
    case length(UInt64)
    /// The chunked transfer coding (rule 4, §7.1): read with `ChunkedDecoder`.
    case chunked
    /// Until the server closes the connection (rules 4 and 8).
    case untilClose
}

/// Why a response head was refused. `status` is what a relay answers its own client: 502, the
/// server upstream sent something unusable (RFC 9110 §15.6.3).
public struct ResponseHeadError: Error, Sendable, Equatable, CustomStringConvertible {
    public let status: Int
    public let description: String

    init(_ description: String) {
        self.status = 502
        self.description = description
    }
}

public enum ResponseHeadParser {
    /// The most bytes a head may take, status line and fields.
    public static let maximumHeadBytes = 16 << 10
    public static let maximumFields = 100

    /// Where the head ends in `bytes` (the index just past its blank line), nil when it has not
    /// ended yet; an error once `maximumHeadBytes` have come without an end.
    public static func headLength(_ bytes: some Collection<UInt8>) -> Result<Int?, ResponseHeadError> {
        HeadLines.end(bytes, maximum: maximumHeadBytes, what: "response").mapError { ResponseHeadError($0.message) }
    }

    /// Parses a whole head: `head` ends with its blank line (as `headLength` found it).
    /// `requestMethod` is the method of the request it answers (a HEAD response has no body).
    public static func parse(_ head: ArraySlice<UInt8>, requestMethod: String) -> Result<ResponseHead, ResponseHeadError> {
        let lines: [ArraySlice<UInt8>]
        switch HeadLines.split(head, maximum: maximumHeadBytes, what: "response") {
        case .success(let split): lines = split
        case .failure(let problem): return .failure(ResponseHeadError(problem.message))
        }
        guard lines.count - 1 <= maximumFields else { return .failure(ResponseHeadError("more than \(maximumFields) header fields")) }
        return parseStatusLine(lines[lines.startIndex]).flatMap { version, status, reason in
            var fields: [HeaderField] = []
            for line in lines.dropFirst() {
                switch HeadLines.field(line) {
                case .success(let field): fields.append(field)
                case .failure(let problem): return .failure(ResponseHeadError(problem.message))
                }
            }
            return framing(status: status, requestMethod: requestMethod, fields: fields).map { framing in
                ResponseHead(status: status, reason: reason, version: version, fields: fields, framing: framing)
            }
        }
    }

    /// status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4). The space
    /// before an empty reason is often left out, and accepted: it makes no second reading.
    static func parseStatusLine(_ line: ArraySlice<UInt8>) -> Result<(String, Int, String), ResponseHeadError> {
        let version = line.prefix(8)
        let versionText = String(decoding: version, as: UTF8.self)
        guard versionText == "HTTP/1.1" || versionText == "HTTP/1.0" else {
            return .failure(ResponseHeadError("the status line does not start with HTTP/1.1 or HTTP/1.0: \(HeadLines.printable(line))"))
        }
        let rest = line.dropFirst(8)
        guard rest.first == 0x20 else { return .failure(ResponseHeadError("no space after the HTTP version in the status line")) }
        let code = rest.dropFirst().prefix(3)
        guard code.count == 3, code.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return .failure(ResponseHeadError("the status code is not three digits: \(HeadLines.printable(line))"))
        }
        let status = code.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard (100...599).contains(status) else { return .failure(ResponseHeadError("the status code \(status) is not from 100 to 599 (RFC 9110 §15)")) }
        var reason = rest.dropFirst(4)
        if !reason.isEmpty {
            guard reason.first == 0x20 else { return .failure(ResponseHeadError("no space after the status code in the status line")) }
            reason = reason.dropFirst()
        }
        // reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )
        guard reason.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
            return .failure(ResponseHeadError("the reason phrase has control characters"))
        }
        return .success((versionText, status, String(decoding: reason, as: UTF8.self)))
    }

    /// The message body length (RFC 9112 §6.3), refusing what two readers could frame two ways.
    static func framing(status: Int, requestMethod: String, fields: [HeaderField]) -> Result<BodyFraming, ResponseHeadError> {
        // Rules 1 and 2: no body whatever the fields say.
        if requestMethod == "HEAD" || (100...199).contains(status) || status == 204 || status == 304 { return .success(.none) }
        if requestMethod == "CONNECT" && (200...299).contains(status) { return .success(.none) }
        let encodings = fields.filter { $0.isNamed("Transfer-Encoding") }
        let lengths = fields.filter { $0.isNamed("Content-Length") }
        if !encodings.isEmpty {
            // Rule 3: both is how responses are smuggled; a relay refuses it.
            guard lengths.isEmpty else { return .failure(ResponseHeadError("both Transfer-Encoding and Content-Length (RFC 9112 §6.3)")) }
            let codings = listElements(encodings.map(\.value)).map { coding in
                // A coding's parameters (`;`) do not change its name.
                String(coding.prefix { $0 != ";" && $0 != " " && $0 != "\t" })
            }
            guard let last = codings.last else { return .failure(ResponseHeadError("a Transfer-Encoding with no coding")) }
            let chunked = codings.filter { HeaderField.equalIgnoringASCIICase($0, "chunked") }.count
            // §7.1: chunked is applied at most once, and last.
            guard chunked <= 1 else { return .failure(ResponseHeadError("chunked applied more than once (RFC 9112 §7.1)")) }
            // Rule 4: chunked last frames the body; any other coding last leaves only the close.
            return .success(HeaderField.equalIgnoringASCIICase(last, "chunked") ? .chunked : .untilClose)
        }
        if !lengths.isEmpty {
            // Rule 5: one value, or a list of the same value; anything else is unrecoverable.
            var length: UInt64?
            for element in listElements(lengths.map(\.value), keepingEmpty: true) {
                guard !element.isEmpty, element.utf8.count <= 20, element.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                      let value = UInt64(element)
                else { return .failure(ResponseHeadError("Content-Length \(HeadLines.printable(element.utf8)) is not one whole number")) }
                if let length, length != value { return .failure(ResponseHeadError("Content-Length values differ (\(length) and \(value))")) }
                length = value
            }
            guard let length else { return .failure(ResponseHeadError("an empty Content-Length")) }
            return .success(.length(length))
        }
        // Rule 8: a response with neither ends when the connection does.
        return .success(.untilClose)
    }

    /// The elements of comma-separated field values (RFC 9110 §5.6.1), trimmed; empty ones
    /// dropped unless `keepingEmpty` (then a caller can refuse them).
    static func listElements(_ values: [String], keepingEmpty: Bool = false) -> [String] {
        let elements = values.flatMap { value in
            value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map { element in
                var trimmed = element
                while let first = trimmed.first, first == 0x20 || first == 0x09 { trimmed = trimmed.dropFirst() }
                while let last = trimmed.last, last == 0x20 || last == 0x09 { trimmed = trimmed.dropLast() }
                return String(decoding: trimmed, as: UTF8.self)
            }
        }
        return keepingEmpty ? elements : elements.filter { !$0.isEmpty }
    }
}
