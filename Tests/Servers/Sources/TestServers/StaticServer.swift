/// `momin-test-server static`: a directory served as a static site, as a package index (PEP 503)
/// is served: `GET|HEAD /PATH` answers the regular file ROOT/PATH; a path ending in `/` answers
/// the directory's `index.html`; a directory named without its `/` is a 301 to the name with it,
/// as PyPI answers `/simple/NAME`. Anything else, and anything outside ROOT (a `.` or `..`
/// segment, a symlink out), is 404; other methods are 405. With a log, every request that
/// parsed appends one JSON line once answered: `method`, `path` (as sent), `status`, `bytes`
/// (the body bytes written; 0 for HEAD).
public struct StaticServer: HTTPHandler {
    let tree: FileTree
    let log: LineLog?

    public init(root: String, log: LineLog?) throws(UsageError) {
        tree = try FileTree(root: root)
        self.log = log
    }

    public func handle(_ request: Request, _ responder: Responder) throws {
        let head = request.head
        var status = 0
        var sent: UInt64 = 0
        defer {
            log?.append(JSON.object([
                ("method", .string(head.method)), ("path", .string(head.path)),
                ("status", .int(Int64(status))), ("bytes", .int(Int64(sent))),
            ]).text)
        }
        // Every answer but a file's: a short text body.
        func answer(_ code: Int, _ message: String, fields: [(name: String, value: String)] = []) throws {
            status = code
            let body = Array("\(code) \(ResponseHead.reason(code)): \(message)\n".utf8)
            try responder.send(status: code, contentType: "text/plain; charset=utf-8", body: body, fields: fields)
            if !responder.isHead { sent = UInt64(body.count) }
        }
        guard head.method == "GET" || head.method == "HEAD" else {
            return try answer(405, "\(head.method) is not served here", fields: [("Allow", "GET, HEAD")])
        }
        guard let path = FileTree.segments(head.path) else { return try answer(404, "no such file") }
        let file: String
        switch tree.find(path.segments) {
        case .file(let resolved) where !path.trailingSlash:
            file = resolved
        case .directory where !path.trailingSlash:
            let location = head.path + "/" + (head.query.map { "?" + $0 } ?? "")
            return try answer(301, "see \(location)", fields: [("Location", location)])
        case .directory:
            // index.html is looked up like any other file: a symlink out of ROOT finds nothing.
            guard case .file(let resolved) = tree.find(path.segments + ["index.html"]) else {
                return try answer(404, "no index.html here")
            }
            file = resolved
        default:
            return try answer(404, "no such file")
        }
        status = 200
        guard try FileTree.send(file, responder, sent: &sent) else { return try answer(404, "no such file") }
    }
}
