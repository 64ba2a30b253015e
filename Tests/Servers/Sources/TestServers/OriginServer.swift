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
    /// ROOT after realpath(3); nil without `--root`.
    let root: String?

    /// The largest /big body.
    static let maxBigBytes: UInt64 = 1 << 40
    static let maxSlowMilliseconds = 600_000
    static let echoBodyLimit = 64 * 1024

    public init(root: String?) throws {
        guard let root else {
            self.root = nil
            return
        }
        guard let resolved = realpath(root, nil) else { throw UsageError("--root \(root): \(String(cString: strerror(errno)))") }
        defer { free(resolved) }
        self.root = String(cString: resolved)
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
        guard let root, let relative = OriginServer.safeRelativePath(request.head.path) else {
            throw HTTPError(status: 404, "no such file")
        }
        guard let resolvedPointer = realpath(root + "/" + relative, nil) else { throw HTTPError(status: 404, "no such file") }
        let resolved = String(cString: resolvedPointer)
        free(resolvedPointer)
        // A symlink inside ROOT may not lead out of it.
        guard resolved.hasPrefix(root == "/" ? "/" : root + "/") else { throw HTTPError(status: 404, "no such file") }
        let fd = open(resolved, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw HTTPError(status: 404, "no such file") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { throw HTTPError(status: 404, "no such file") }
        try responder.start(status: 200, contentType: OriginServer.contentType(resolved), length: UInt64(info.st_size))
        var left = Int(info.st_size)
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while left > 0 {
            let n = try retrying("read") { chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, left)) } }
            // A file that shrank mid-answer: the promised length cannot be kept; close.
            guard n > 0 else { responder.closeAfterResponse(); return }
            try responder.write(Array(chunk[0..<n]))
            left -= n
        }
    }

    /// The path with its percent-escapes decoded (RFC 3986 §2.1), without the leading `/`; nil
    /// for NUL, bad escapes, or `.`/`..` segments.
    static func safeRelativePath(_ path: String) -> String? {
        var bytes: [UInt8] = []
        var utf8 = Array(path.utf8)[...]
        while let b = utf8.popFirst() {
            if b == UInt8(ascii: "%") {
                guard utf8.count >= 2, let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) else { return nil }
                utf8 = utf8.dropFirst(2)
                bytes.append(value)
            } else {
                bytes.append(b)
            }
        }
        guard !bytes.contains(0), let decoded = String(validating: bytes, as: UTF8.self) else { return nil }
        let segments = decoded.split(separator: "/", omittingEmptySubsequences: true)
        guard !segments.isEmpty, !segments.contains(where: { $0 == "." || $0 == ".." }) else { return nil }
        return segments.joined(separator: "/")
    }

    static func contentType(_ path: String) -> String {
        let types = [".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8", ".json": "application/json"]
        return types.first { path.hasSuffix($0.key) }?.value ?? "application/octet-stream"
    }
}
