import HTTPWire

/// What a guest sends the egress proxy first (docs/egress.md), and a caller momin serve
/// (docs/api.md): the head is found within its bound, parsed or refused with a status the proxy
/// sends, an accepted one forwards as a request whose head ends in one blank line and whose
/// target is the one judged, and an origin-form target decodes to no NUL.
enum HTTPHeadTarget {
    static func run(_ input: [UInt8]) {
        let length: Int?
        switch RequestHeadParser.headLength(input) {
        case .failure(let error):
            guard [400, 431].contains(error.status) else { violated("headLength refused with \(error.status)") }
            return
        case .success(let found): length = found
        }
        guard let length else { return }
        guard length <= RequestHeadParser.maximumHeadBytes, length <= input.count else { violated("a head of \(length) bytes") }
        switch RequestHeadParser.parse(input[0..<length]) {
        case .failure(let error):
            guard [400, 414, 431, 505].contains(error.status) else { violated("parse refused with \(error.status)") }
        case .success(let head):
            guard head.fields.count <= RequestHeadParser.maximumFields else { violated("\(head.fields.count) fields") }
            // What momin serve takes from an origin-form target: nothing decodes to NUL, and the
            // path never grows past the target it came from.
            if case .origin(let target) = head.target, case let (path, query)? = OriginTarget.split(target) {
                guard !path.utf8.contains(0), !query.contains(where: { $0.key.utf8.contains(0) || $0.value.utf8.contains(0) }),
                      path.utf8.count <= target.utf8.count else { violated("the origin target \(target) decoded to \(path) \(query)") }
            }
            guard case .absolute(let host, let port, let target) = head.target else { return }
            guard port != 0, !host.isEmpty, target.hasPrefix("/") else { violated("an absolute target \(host):\(port) \(target)") }
            if case .success(let forwarded) = ForwardedRequest.make(head, host: host, port: port, pathAndQuery: target) {
                let text = forwarded.head
                guard text.starts(with: Array("\(head.method) \(target) HTTP/1.1\r\n".utf8)) else { violated("the forwarded request line differs") }
                // One blank line, at the end: nothing the guest wrote splits it into two requests.
                guard let end = try? RequestHeadParser.headLength(text).get(), end == text.count else {
                    violated("the forwarded head does not end exactly at its blank line")
                }
            }
        }
    }
}
