/// What a forward proxy sends the origin server for one plain HTTP request (RFC 9110 §7.6,
/// RFC 9112 §3.2.2): the request line in origin-form, a `Host` of the target's authority, the
/// client's fields less the hop-by-hop ones, and `Connection: close`, so that the connection
/// carries exactly this one request, the one the policy judged.
public struct ForwardedRequest: Sendable, Equatable {
    public var head: [UInt8]
    /// The request body's length (Content-Length; 0 without one): exactly this many bytes of the
    /// client's stream go on after the head, and no more.
    public var bodyLength: UInt64

    /// Fields that belong to one connection, never forwarded (RFC 9110 §7.6.1), and the proxy's
    /// own credentials (§11.7.2).
    static let hopByHop: Set<String> = [
        "connection", "proxy-connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate", "host",
    ]

    /// The request to forward to `host:port` for `head`, whose target is `pathAndQuery`; or
    /// why not. A body must be framed by Content-Length: a chunked one is refused (411), as the
    /// proxy forwards a body by its length and stops there.
    public static func make(_ head: RequestHead, host: String, port: UInt16, pathAndQuery: String) -> Result<ForwardedRequest, RequestHeadError> {
        let transferEncodings = head.values(of: "Transfer-Encoding")
        let lengths = head.values(of: "Content-Length")
        if !transferEncodings.isEmpty {
            if !lengths.isEmpty {
                return .failure(RequestHeadError(400, "both Transfer-Encoding and Content-Length (RFC 9112 §6.3)"))
            }
            return .failure(RequestHeadError(411, "a chunked request body is not relayed; send the body with a Content-Length"))
        }
        var bodyLength: UInt64 = 0
        if let first = lengths.first {
            // Several fields, or a list, are allowed only when every value is the same (§6.3).
            let values = lengths.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
                .map { $0.trimmingSpaces() }
            guard values.allSatisfy({ $0 == values[0] }), let value = parseLength(values[0]) else {
                return .failure(RequestHeadError(400, "Content-Length \(RequestHeadParser.printable(first.utf8)) is not one whole number"))
            }
            bodyLength = value
        }
        // Fields named in Connection are hop-by-hop too (§7.6.1).
        var dropped = hopByHop
        for value in head.values(of: "Connection") {
            for option in value.split(separator: ",") { dropped.insert(option.trimmingSpaces().lowercasedASCII()) }
        }
        var text = "\(head.method) \(pathAndQuery) HTTP/1.1\r\n"
        let hostText = host.contains(":") ? "[\(host)]" : host
        text += "Host: \(hostText)\(port == 80 ? "" : ":\(port)")\r\n"
        for field in head.fields where !dropped.contains(field.name.lowercasedASCII()) {
            text += "\(field.name): \(field.value)\r\n"
        }
        text += "Connection: close\r\n\r\n"
        return .success(ForwardedRequest(head: Array(text.utf8), bodyLength: bodyLength))
    }

    /// 1*DIGIT, at most 18 digits (below 2^63).
    static func parseLength(_ text: String) -> UInt64? {
        guard (1...18).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return UInt64(text)
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var bytes = Substring(self).utf8[...]
        while let first = bytes.first, first == 0x20 || first == 0x09 { bytes = bytes.dropFirst() }
        while let last = bytes.last, last == 0x20 || last == 0x09 { bytes = bytes.dropLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    func lowercasedASCII() -> String { String(decoding: utf8.map(HeaderField.lower), as: UTF8.self) }
}

/// A response the proxy makes itself (an error, CONNECT's 200): status line, fields, and a
/// short text body (RFC 9112 §4).
public enum ProxyResponse {
    public static func make(status: Int, reason: String, fields: [HeaderField] = [], body: String = "",
                            contentType: String = "text/plain; charset=utf-8") -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(reason)\r\n"
        for field in fields { text += "\(field.name): \(field.value)\r\n" }
        if status != 200 || !body.isEmpty {
            text += "Content-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n"
        }
        return Array((text + "\r\n" + body).utf8)
    }

    /// The reason phrase of the statuses the proxy sends (RFC 9110 §15).
    public static func reason(_ status: Int) -> String {
        switch status {
        case 200: "Connection Established"
        case 400: "Bad Request"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: "Error"
        }
    }
}
