import Glibc

/// `momin-test-server http`: what a proxy test connects to.
///
/// - `GET|HEAD /PATH`: the file ROOT/PATH (regular files only; no `.` or `..` segments, nothing
///   that resolves outside ROOT); 404 otherwise, and for every path without `--root`.
/// - `ANY /echo[/...][?...]`: a JSON object with the request as it arrived: `method`, `target`
///   (as sent: origin-form, or absolute-form), `path`, `query`, `version`, `headers` (a list
///   of `[name, value]` in order, duplicates kept), `body_length`, `body_sha256`,
///   `body_framing` (`none`, `content-length`, `chunked`), `trailers`; with `?body=1` also
///   `body` (the first 64 KiB as text).
/// - `GET /big?bytes=N`: N bytes where byte i is `i % 251`, with Content-Length, streamed.
/// - `GET /slow?ms=N`: waits N ms (at most 600000), then answers `slept N ms`.
public struct OriginServer: HTTPHandler {
    /// The files under ROOT; nil without `--root`.
    let tree: FileTree?

    /// The largest /big body.
    static let maxBigBytes: UInt64 = 1 << 40
    static let maxSlowMilliseconds = 600_000
    static let echoBodyLimit = 64 * 1024

    public init(root: String?) throws {
        tree = try root.map { root throws(UsageError) in try FileTree(root: root) }
    }

    public func handle(_ request: Request, _ responder: Responder) throws {
        let head = request.head
        if head.path == "/echo" || head.path.hasPrefix("/echo/") {
            return try echo(request, responder)
        }
        guard head.method == "GET" || head.method == "HEAD" else {
            return try responder.send(status: 405, contentType: "text/plain", body: Array("\(head.method) is not served here\n".utf8),
                                      fields: [("Allow", "GET, HEAD")])
        }
        switch head.path {
        case "/big": try big(request, responder)
        case "/slow": try slow(request, responder)
        default: try file(request, responder)
        }
    }

    func echo(_ request: Request, _ responder: Responder) throws {
        let head = request.head
        var hasher = SHA256()
        let keepBody = head.queryValue("body") == "1"
        var kept: [UInt8] = []
        let length = try request.readBody { piece in
            hasher.update(piece)
            if keepBody, kept.count < OriginServer.echoBodyLimit {
                kept += piece.prefix(OriginServer.echoBodyLimit - kept.count)
            }
        }
        let framing: String
        switch request.framing {
        case .none: framing = "none"
        case .length: framing = "content-length"
        case .chunked: framing = "chunked"
        }
        func pairs(_ fields: [(name: String, value: String)]) -> JSON {
            .array(fields.map { .array([.string($0.name), .string($0.value)]) })
        }
        var members: [(String, JSON)] = [
            ("method", .string(head.method)),
            ("target", .string(head.target)),
            ("path", .string(head.path)),
            ("query", head.query.map(JSON.string) ?? .null),
            ("version", .string(head.version)),
            ("headers", pairs(head.fields)),
            ("body_length", .int(Int64(length))),
            ("body_sha256", .string(hasher.finalizeHex())),
            ("body_framing", .string(framing)),
            ("trailers", pairs(request.trailers)),
        ]
        if keepBody { members.append(("body", .string(String(decoding: kept, as: UTF8.self)))) }
        try responder.send(status: 200, json: .object(members))
    }

    func big(_ request: Request, _ responder: Responder) throws {
        guard let text = request.head.queryValue("bytes"), let count = UInt64(text), count <= OriginServer.maxBigBytes else {
            throw HTTPError(status: 400, "/big needs ?bytes=N, N at most \(OriginServer.maxBigBytes)")
        }
        try responder.start(status: 200, contentType: "application/octet-stream", length: count)
        // 261 periods of 251 bytes: each piece starts at a multiple of 251, so all are alike.
        let piece = (0..<(251 * 261)).map { UInt8($0 % 251) }
        var left = count
        while left > 0 {
            let n = Int(min(left, UInt64(piece.count)))
            try responder.write(n == piece.count ? piece : Array(piece[0..<n]))
            left -= UInt64(n)
        }
    }

    func slow(_ request: Request, _ responder: Responder) throws {
        guard let text = request.head.queryValue("ms"), let ms = Int(text), ms >= 0, ms <= OriginServer.maxSlowMilliseconds else {
            throw HTTPError(status: 400, "/slow needs ?ms=N, N from 0 to \(OriginServer.maxSlowMilliseconds)")
        }
        sleep(milliseconds: ms)
        try responder.send(status: 200, contentType: "text/plain", body: Array("slept \(ms) ms\n".utf8))
    }

    func file(_ request: Request, _ responder: Responder) throws {
        var sent: UInt64 = 0
        guard let tree, let path = FileTree.segments(request.head.path), case let .file(resolved) = tree.find(path.segments),
              try FileTree.send(resolved, responder, sent: &sent) else {
            throw HTTPError(status: 404, "no such file")
        }
    }
}
