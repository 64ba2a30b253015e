import Agents
import FoundationEssentials
import Glibc
import Host
import POSIX

/// `momin serve`'s REST API (docs/api.md; the OpenAPI 3.1 document is openapi.json beside this
/// file, served at /openapi.json): each connection's requests read and answered on a thread of
/// its own, each one admitted by who the kernel says the caller is, each operation a call into
/// `Sandboxes`, which is the Host library the CLI uses.
public final class APIServer: Sendable {
    public let sandboxes: Sandboxes
    public let callers: CallerPolicy
    /// Who may call over TCP, by token; nil when the server does not listen on TCP.
    public let tokens: BearerTokens?
    /// The MCP endpoint at /mcp, when the server has one.
    public let mcp: (any MountedService)?

    /// Answers' JSON: keys sorted, so each answer has one form; slashes as they are.
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// The most a JSON request body may be.
    static let jsonLimit = 1 << 20
    /// The most one file upload may be.
    static let uploadLimit: UInt64 = 1 << 30
    /// Connections served at once; one more is answered 503 and closed.
    public static let maxConnections = 64

    /// The most an MCP request body may be: an fs_write of 8 MiB, base64-encoded, and its envelope.
    static let mcpLimit = 12 << 20

    public init(sandboxes: Sandboxes, callers: CallerPolicy, tokens: BearerTokens? = nil, mcp: (any MountedService)? = nil) {
        self.sandboxes = sandboxes
        self.callers = callers
        self.tokens = tokens
        self.mcp = mcp
    }

    /// The operations, as the OpenAPI document's paths name them.
    public static let routes: [(method: String, path: String)] = [
        ("GET", "/openapi.json"),
        ("GET", "/v1/sandboxes"),
        ("POST", "/v1/sandboxes"),
        ("GET", "/v1/sandboxes/{name}"),
        ("DELETE", "/v1/sandboxes/{name}"),
        ("POST", "/v1/sandboxes/{name}/commands"),
        ("GET", "/v1/sandboxes/{name}/commands"),
        ("GET", "/v1/sandboxes/{name}/commands/{id}"),
        ("DELETE", "/v1/sandboxes/{name}/commands/{id}"),
        ("GET", "/v1/sandboxes/{name}/files"),
        ("PUT", "/v1/sandboxes/{name}/files"),
        ("GET", "/v1/sandboxes/{name}/files/stat"),
        ("GET", "/v1/sandboxes/{name}/files/list"),
        ("POST", "/mcp"),
    ]

    /// The OpenAPI document, as committed.
    public static var openAPIDocument: [UInt8] { PackageResources.openapi_json }

    /// Serves one connection accepted on the Unix socket until the client is done, then closes
    /// it. The caller is admitted by its credentials before a byte of its requests is read.
    public func serve(_ fd: Int32) {
        defer { FileIO.closeSocketGracefully(fd) }
        let connection = HTTPConnection(fd: fd)
        switch callers.admit(fd) {
        case .success(let caller): serveRequests(on: connection) { _ in .success(caller) }
        case .failure(let problem): connection.respondAndClose(problem)
        }
    }

    /// Serves one connection accepted over TCP: every request must carry a registered bearer
    /// token (RFC 6750 §2.1); the first that does not is answered 401 and ends the connection.
    public func serveTCP(_ fd: Int32) {
        defer { FileIO.closeSocketGracefully(fd) }
        let connection = HTTPConnection(fd: fd)
        let peer = TCPEndpoint.peer(of: fd)
        serveRequests(on: connection) { [tokens] request in
            if let caller = tokens?.admit(authorization: request.head.value(of: "Authorization"), peer: peer) { return .success(caller) }
            return .failure(Problem(status: 401, title: "unauthorized",
                                    detail: "this request needs Authorization: Bearer and a token this server knows (momin serve --tokens)"))
        }
    }

    private func serveRequests(on connection: HTTPConnection, admit: (HTTPConnection.Request) -> Result<Caller, Problem>) {
        while !connection.closing {
            switch connection.next() {
            case .closed: return
            case .refused(let problem):
                connection.respondAndClose(problem)
                return
            case .request(let request):
                switch admit(request) {
                case .success(let caller): handle(request, on: connection, caller: caller)
                case .failure(let problem):
                    connection.respondAndClose(problem, fields: [("WWW-Authenticate", #"Bearer realm="momin""#)])
                    return
                }
            }
        }
    }

    func handle(_ request: HTTPConnection.Request, on connection: HTTPConnection, caller: Caller) {
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        // Only POST and PUT read a body; any other's would be taken for the next request's head.
        if request.method != "POST" && request.method != "PUT" { connection.abandonBody(request) }
        do throws(Problem) {
            switch (request.method, parts.count, parts.first) {
            case ("GET", 1, "openapi.json"):
                connection.respond(status: 200, contentType: "application/json", body: Self.openAPIDocument)
            case (_, 1, "mcp") where mcp != nil:
                try mounted(mcp!, request, on: connection, caller: caller)
            case (_, 2, "v1") where parts[1] == "sandboxes":
                switch request.method {
                case "GET": try reply(connection, 200, SandboxList(sandboxes: sandboxes.list(for: caller)))
                case "POST":
                    let body: CreateSandbox = try decode(request, on: connection)
                    try reply(connection, 201, try sandboxes.create(body, caller: caller))
                default: throw notAllowed(request, "GET, POST")
                }
            case (_, 3, "v1") where parts[1] == "sandboxes":
                switch request.method {
                case "GET": try reply(connection, 200, try sandboxes.get(parts[2], for: caller))
                case "DELETE":
                    try sandboxes.stop(parts[2], reason: "deleted by \(caller)", caller: caller)
                    connection.respond(status: 204, contentType: nil, body: [])
                default: throw notAllowed(request, "GET, DELETE")
                }
            case (_, 4, "v1") where parts[1] == "sandboxes" && parts[3] == "commands":
                switch request.method {
                case "GET": try reply(connection, 200, try sandboxes.backgroundCommands(parts[2], caller: caller))
                case "POST":
                    let body: RunCommand = try decode(request, on: connection)
                    if body.background == true {
                        try reply(connection, 202, try sandboxes.start(parts[2], body, caller: caller))
                    } else {
                        runCommand(parts[2], body, on: connection, caller: caller)
                    }
                default: throw notAllowed(request, "GET, POST")
                }
            case (_, 5, "v1") where parts[1] == "sandboxes" && parts[3] == "commands":
                switch request.method {
                case "GET": try reply(connection, 200, try sandboxes.backgroundCommand(parts[2], id: parts[4], caller: caller))
                case "DELETE": try reply(connection, 202, try sandboxes.backgroundCommand(parts[2], id: parts[4], kill: true, caller: caller))
                default: throw notAllowed(request, "GET, DELETE")
                }
            case (_, 4, "v1") where parts[1] == "sandboxes" && parts[3] == "files":
                guard let path = request.query["path"] else {
                    throw Problem(status: 400, title: "bad request", detail: "the query must name the guest file: ?path=/absolute/path")
                }
                switch request.method {
                case "GET": try readFile(parts[2], path: path, on: connection, caller: caller)
                case "PUT": try writeFile(parts[2], path: path, request, on: connection, caller: caller)
                default: throw notAllowed(request, "GET, PUT")
                }
            case (_, 5, "v1") where parts[1] == "sandboxes" && parts[3] == "files" && (parts[4] == "stat" || parts[4] == "list"):
                guard request.method == "GET" else { throw notAllowed(request, "GET") }
                guard let path = request.query["path"] else {
                    throw Problem(status: 400, title: "bad request", detail: "the query must name the guest path: ?path=/absolute/path")
                }
                if parts[4] == "list" {
                    try reply(connection, 200, try sandboxes.list(parts[2], path: path, caller: caller))
                } else {
                    let follow: Bool
                    switch request.query["follow"] {
                    case nil, "false": follow = false
                    case "true": follow = true
                    case let other?: throw Problem(status: 400, title: "bad request", detail: "follow=\(other): expected true or false")
                    }
                    try reply(connection, 200, try sandboxes.stat(parts[2], path: path, followSymlinks: follow, caller: caller))
                }
            default:
                throw Problem(status: 404, title: "not found", detail: "no operation at \(request.method) \(request.path) (GET /openapi.json lists them)")
            }
        } catch {
            connection.abandonBody(request)  // a refused request's body may still be on its way
            connection.respond(error)
        }
    }

    /// A request for a mounted service, its body read whole (up to `mcpLimit`), its answer sent as
    /// the service gave it (a field with a line break in it is dropped).
    func mounted(_ service: any MountedService, _ request: HTTPConnection.Request, on connection: HTTPConnection,
                 caller: Caller) throws(Problem) {
        let body = request.method == "POST" ? try connection.body(request, limit: Self.mcpLimit) : []
        let fields = request.head.fields.map { (name: $0.name, value: $0.value) }
        let answer = service.respond(to: MountedRequest(method: request.method, path: request.path, fields: fields, body: body), caller: caller)
        var contentType: String?
        var others: [(String, String)] = []
        for (name, value) in answer.fields where !(name + value).contains(where: { $0 == "\r" || $0 == "\n" }) {
            if name.lowercased() == "content-type" { contentType = value } else if name.lowercased() != "content-length" { others.append((name, value)) }
        }
        connection.respond(status: answer.status, contentType: contentType, body: answer.body, fields: others)
    }

    func notAllowed(_ request: HTTPConnection.Request, _ allowed: String) -> Problem {
        Problem(status: 405, title: "method not allowed", detail: "\(request.method) \(request.path): allowed are \(allowed)")
    }

    func decode<T: Decodable>(_ request: HTTPConnection.Request, on connection: HTTPConnection) throws(Problem) -> T {
        let type = request.head.value(of: "Content-Type")?.split(separator: ";").first.map { $0.trimmingSpaces.lowercased() }
        guard type == "application/json" else {
            throw Problem(status: 415, title: "unsupported media type", detail: "the body must be application/json")
        }
        let bytes = try connection.body(request, limit: Self.jsonLimit)
        do { return try JSONDecoder().decode(T.self, from: Data(bytes)) } catch {
            throw Problem(status: 400, title: "bad request", detail: "the body is not a valid \(T.self): \(Self.describe(error))")
        }
    }

    /// A decoding error in one line: what was wrong and where.
    public static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func at(_ path: [any CodingKey]) -> String { path.isEmpty ? "the top level" : path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".") }
        switch error {
        case .typeMismatch(let type, let context): return "\(at(context.codingPath)): expected \(type)"
        case .valueNotFound(let type, let context): return "\(at(context.codingPath)): expected \(type), found null"
        case .keyNotFound(let key, let context): return "\(at(context.codingPath + [key])): missing"
        case .dataCorrupted(let context): return "\(at(context.codingPath)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    func reply(_ connection: HTTPConnection, _ status: Int, _ value: some Encodable) throws(Problem) {
        guard let bytes = try? Self.encoder.encode(value) else { throw Problem(status: 500, title: "internal error", detail: "the answer could not be encoded") }
        connection.respond(status: status, contentType: "application/json", body: Array(bytes))
    }

    /// A command's output as NDJSON lines, sent as they come (chunked); the last line is its
    /// exit, or the problem that ended it. A failure before the command ran is a plain problem.
    func runCommand(_ name: String, _ command: RunCommand, on connection: HTTPConnection, caller: Caller) {
        var started = false
        let encoder = Self.encoder
        func send(_ event: CommandEvent) {
            if !started {
                connection.startChunked(status: 200, contentType: "application/x-ndjson")
                started = true
            }
            connection.chunk(((try? Array(encoder.encode(event))) ?? []) + [0x0A])
        }
        do {
            try sandboxes.run(name, command, caller: caller, event: send)
        } catch {
            guard started else { return connection.respond(error) }
            var line = CommandEvent(type: "error")
            line.problem = error
            send(line)
        }
        if started { connection.finishChunked() }
    }

    /// The file's bytes, chunked as they come. A failure after the first byte cannot change the
    /// status: the stream is cut without its last chunk, which a client sees as a failed read.
    func readFile(_ name: String, path: String, on connection: HTTPConnection, caller: Caller) throws(Problem) {
        var started = false
        do {
            _ = try sandboxes.readFile(name, path: path, caller: caller) { bytes in
                if !started {
                    connection.startChunked(status: 200, contentType: "application/octet-stream")
                    started = true
                }
                connection.chunk(bytes)
            }
        } catch {
            guard started else { throw error }
            connection.cut()
            return
        }
        if started { connection.finishChunked() } else { connection.respond(status: 200, contentType: "application/octet-stream", body: []) }
    }

    /// The body goes to an unnamed temporary file first, then into the guest from there: a
    /// large file never sits in memory, and an upload cut short writes nothing in the guest.
    func writeFile(_ name: String, path: String, _ request: HTTPConnection.Request, on connection: HTTPConnection,
                   caller: Caller) throws(Problem) {
        guard request.bodyLength <= Self.uploadLimit else {
            throw Problem(status: 413, title: "content too large", detail: "the file is \(request.bodyLength) bytes; at most \(Self.uploadLimit) are taken")
        }
        let fd = try TemporaryFile.open()
        defer { close(fd) }
        var failed: Int32?
        try connection.streamBody(request) { piece in
            guard failed == nil else { return }
            do throws(SystemError) { try FileIO.writeAll(fd, piece) } catch { failed = error.errno }
        }
        if let failed { throw Problem(status: 500, title: "internal error", detail: "cannot hold the upload: \(describeErrno(failed))") }
        try TemporaryFile.rewind(fd)
        let written = try sandboxes.writeFile(name, path: path, caller: caller, from: fd)
        try reply(connection, 200, WrittenFile(path: path, bytes: written))
    }
}

extension APIServer {
    /// Listens on `path`, a Unix socket made with mode 0600 (0660 and the group's, given a
    /// group) before it appears under its name, so nobody else ever sees it open; a socket
    /// left at `path` by an earlier server is replaced, anything else there is an error.
    public static func listen(path: String, group: gid_t?) throws(HostError) -> Int32 {
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else { throw .badInput("--socket \(path): exists and is not a socket") }
            unlink(path)
        }
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        // A group's members must be able to reach the socket: its directory searchable by them.
        var dir = stat()
        if let group, stat(directory.isEmpty ? "/" : directory, &dir) == 0,
           dir.st_mode & 0o001 == 0, !(dir.st_mode & 0o010 != 0 && dir.st_gid == group) {
            throw .badInput("--group \(group): its members cannot reach \(path): the directory \(directory) (mode \(String(dir.st_mode & 0o7777, radix: 8))) is not searchable by them; put --socket in one that is")
        }
        let staged = (directory.isEmpty ? "" : directory) + "/.momin-serve-\(getpid()).sock"
        unlink(staged)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard staged.utf8.count < capacity, path.utf8.count < capacity else {
            throw .badInput("--socket \(path): the path is longer than a Unix socket's \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(staged.utf8)) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .failed("socket: \(describeErrno())") }
        // The file is made 0600 by bind itself (umask), then opened to the group if there is one.
        let mask = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(mask)
        let opened = bound == 0 && (group.map { chown(staged, getuid(), $0) == 0 && chmod(staged, 0o660) == 0 } ?? true)
        guard opened, Glibc.listen(fd, 64) == 0, rename(staged, path) == 0 else {
            let why = describeErrno()
            close(fd)
            unlink(staged)
            throw .badInput("--socket \(path): cannot listen there: \(why)")
        }
        return fd
    }

    /// Serves on `listener` (the Unix socket at `path`) and on `tcp`, if given, until SIGTERM,
    /// SIGINT or SIGHUP: connections on threads of their own (at most `maxConnections` on
    /// each), and every 10 s the idle sandboxes stopped and exited children reaped. Then the
    /// socket goes; the sandboxes stay, for the next server to adopt. Blocks the stop signals
    /// in the calling thread first (call it before starting other threads).
    public func run(listener: Int32, path: String, tcp: Int32? = nil) throws(HostError) {
        var stops = SignalRelay.blockStopSignals()
        let refuse: @Sendable (Int32) -> Void = { fd in
            let connection = HTTPConnection(fd: fd, sendSeconds: 2)
            connection.respondAndClose(Problem(status: 503, title: "busy", detail: "this server is serving \(Self.maxConnections) connections; try again"))
        }
        let local = SocketServer(fd: listener, path: path, limit: Self.maxConnections)
        let remote = tcp.map { SocketServer(fd: $0, path: nil, limit: Self.maxConnections) }
        do {
            try local.start(name: "api", serve: { [self] fd in serve(fd) }, refuse: refuse)
            try remote?.start(name: "api-tcp", serve: { [self] fd in serveTCP(fd) }, refuse: refuse)
        } catch {
            local.stop()
            throw .failed("\(error)")
        }
        var pause = timespec(tv_sec: 10, tv_nsec: 0)
        while sigtimedwait(&stops, nil, &pause) <= 0 { sandboxes.tend() }
        local.stop()
        remote?.stop()
    }
}
