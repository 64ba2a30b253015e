import APIServer
import Doors
import Foundation
import Glibc
import Host
import Images
import MominMCP
import POSIX
import Testing

/// The API server over a real socket: each test's client speaks raw HTTP/1.1 to `serve` on a
/// thread of its own (a socketpair, whose peer credentials are this process's), against a host
/// in a temp directory with no VMs.
@Suite struct APIServerTests {
    final class Fixture {
        let root: String
        let server: APIServer

        init(callers: CallerPolicy = CallerPolicy(), policies: String? = nil, mcp: Bool = false) throws {
            var template = Array("/tmp/momin-api-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw SystemError("mkdtemp") }
            root = String(cString: made)
            mkdir(root + "/runtime", 0o700)
            mkdir(root + "/vms", 0o700)
            var environment = HostEnvironment(runtimeDirectory: root + "/runtime", registryDirectory: root + "/vms", momin: nil,
                                              vmm: root + "/momin-vmm", jailer: root + "/momin-jailer")
            environment.warn = { _ in }
            var settings = Sandboxes.Configuration()
            settings.policies = policies
            let sandboxes = try Sandboxes(environment: environment, images: ImageStore(root: root + "/images"), configuration: settings)
            server = APIServer(sandboxes: sandboxes, callers: callers, mcp: mcp ? MCPHTTPService(sandboxes: sandboxes) : nil)
        }

        deinit { try? FileManager.default.removeItem(atPath: root) }

        /// Sends `request` (raw bytes) on a fresh connection, and reads everything the server
        /// answers until it closes the connection or `seconds` pass.
        func exchange(_ request: [UInt8], seconds: Double = 10) throws -> String {
            var ends: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else { throw SystemError("socketpair") }
            let server = self.server, serverEnd = ends[1]
            let thread = try POSIXThread(name: "api-test") { server.serve(serverEnd) }
            defer { thread.join() }
            defer { close(ends[0]) }
            try FileIO.sendAll(ends[0], request)
            shutdown(ends[0], Int32(SHUT_WR))
            var answer: [UInt8] = []
            let deadline = MonotonicClock.deadline(after: seconds)
            var buffer = [UInt8](repeating: 0, count: 65536)
            while MonotonicClock.nanoseconds() < deadline {
                var entry = pollfd(fd: ends[0], events: Int16(POLLIN), revents: 0)
                guard poll(&entry, 1, MonotonicClock.pollTimeout(until: deadline)) > 0 else { break }
                let n = buffer.withUnsafeMutableBytes { recv(ends[0], $0.baseAddress, $0.count, 0) }
                guard n > 0 else { break }
                answer += buffer[0..<n]
            }
            return String(decoding: answer, as: UTF8.self)
        }

        func exchange(_ text: String) throws -> String { try exchange(Array(text.utf8)) }
    }

    /// The status codes of every response in `answer`, in order.
    static func statuses(_ answer: String) -> [Int] {
        answer.components(separatedBy: "HTTP/1.1 ").dropFirst().compactMap { Int($0.prefix(3)) }
    }

    /// The JSON body of the (last) response.
    static func body(_ answer: String) throws -> [String: Any] {
        let text = try #require(answer.components(separatedBy: "\r\n\r\n").last)
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    static func post(_ path: String, json: String, type: String = "application/json") -> String {
        "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: \(type)\r\nContent-Length: \(json.utf8.count)\r\nConnection: close\r\n\r\n\(json)"
    }

    // MARK: The document

    /// Every route the server answers is in the committed OpenAPI document, and nothing else is.
    @Test func theRoutesAreTheOpenAPIDocumentsPaths() throws {
        let document = try #require(try JSONSerialization.jsonObject(with: Data(APIServer.openAPIDocument)) as? [String: Any])
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var documented: Set<String> = []
        for (path, item) in paths {
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] where item[method] != nil {
                documented.insert("\(method.uppercased()) \(path)")
            }
        }
        #expect(documented == Set(APIServer.routes.map { "\($0.method) \($0.path)" }))
        // And it is the file in the repository, byte for byte.
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let committed = try Data(contentsOf: here.appendingPathComponent("Sources/APIServer/openapi.json"))
        #expect(Array(committed) == APIServer.openAPIDocument)
    }

    /// Each schema's properties are the keys its Swift type writes or reads, and its required
    /// ones are those the type cannot do without.
    @Test func theSchemasAreTheWireTypes() throws {
        let document = try #require(try JSONSerialization.jsonObject(with: Data(APIServer.openAPIDocument)) as? [String: Any])
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: [String: Any]])
        func properties(_ name: String) throws -> Set<String> {
            Set(try #require(schemas[name]?["properties"] as? [String: Any]).keys)
        }
        func keys(_ value: some Encodable) throws -> Set<String> {
            Set(try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(value)) as? [String: Any]).keys)
        }
        #expect(try keys(Samples.create) == properties("CreateSandbox"))
        #expect(try keys(Samples.info) == properties("SandboxInfo"))
        #expect(try keys(Samples.command) == properties("RunCommand"))
        #expect(try keys(Samples.event) == properties("CommandEvent"))
        #expect(try keys(Samples.problem) == properties("Problem"))
        #expect(try keys(Samples.written) == properties("WrittenFile"))
        #expect(try keys(SandboxList(sandboxes: [])) == properties("SandboxList"))
        #expect(try keys(FileInfo(path: "/tmp/x", FileStat(type: .regular, permissions: 0o644, size: 3, mtimeSeconds: 1))) == properties("FileInfo"))
        #expect(try keys(DirectoryListing(path: "/tmp", [DirectoryEntry(name: "x", type: .directory)])) == properties("DirectoryListing"))
        var command = BackgroundCommand(id: "cmd-1", argv: ["sleep", "9"], state: "done")
        (command.exitCode, command.signal, command.timedOut, command.problem) = (0, 9, false, Samples.problem)
        (command.stdout, command.stderr, command.droppedBytes) = ("", "", 0)
        #expect(try keys(command) == properties("BackgroundCommand"))
        #expect(try keys(BackgroundCommandList(commands: [])) == properties("BackgroundCommandList"))
        // Required means required: a body without a required key is refused by the decoder too.
        #expect(Set(try #require(schemas["RunCommand"]?["required"] as? [String])) == ["argv"])
        #expect(throws: (any Error).self) { try JSONDecoder().decode(RunCommand.self, from: Data("{}".utf8)) }
    }

    @Test func theDocumentIsServed() throws {
        let answer = try Fixture().exchange("GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(Self.statuses(answer) == [200])
        #expect(answer.contains("Content-Type: application/json\r\n"))
        #expect(try Self.body(answer)["openapi"] as? String == "3.1.0")
    }

    // MARK: Callers

    @Test func aCallerWhoIsNeitherTheOwnerNorInTheGroupIsRefusedUnread() throws {
        let fixture = try Fixture(callers: CallerPolicy(owner: getuid() &+ 4242, group: nil))
        let answer = try fixture.exchange("GET /v1/sandboxes HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(Self.statuses(answer) == [403])
        let problem = try Self.body(answer)
        #expect(problem["detail"] as? String == "uid \(getuid()) is neither this server's owner (uid \(getuid() &+ 4242)) nor in its group")
        #expect(answer.contains("Content-Type: application/problem+json\r\n"))
    }

    @Test func aGroupMemberMayCallButNotNameHostPaths() throws {
        let fixture = try Fixture(callers: CallerPolicy(owner: getuid() &+ 4242, group: getgid()))
        #expect(Self.statuses(try fixture.exchange("GET /v1/sandboxes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == [200])
        for (field, json) in [("kernel", #"{"kernel":"/boot/vmlinuz"}"#), ("disks", #"{"disks":["/etc/shadow"]}"#),
                              ("image (a path)", #"{"image":"/root/secret.ext4"}"#), ("audit", #"{"audit":"/root/log"}"#)] {
            let answer = try fixture.exchange(Self.post("/v1/sandboxes", json: json))
            #expect(Self.statuses(answer) == [403], "\(field)")
            let detail = try Self.body(answer)["detail"] as? String
            #expect(detail?.hasPrefix("\(field): only this server's owner may name host paths") == true, "\(detail ?? "")")
        }
    }

    /// The socket appears under its name already 0600 (0660 for a group), and a group whose
    /// members could not reach it is refused rather than served to nobody.
    @Test func theSocketIsMadeClosedAndAGroupMustBeAbleToReachIt() throws {
        var template = Array("/tmp/momin-sock-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/api.sock"
        #expect(throws: HostError.badInput("--group \(getgid()): its members cannot reach \(path): the directory \(directory) (mode 700) is not searchable by them; put --socket in one that is")) {
            _ = try APIServer.listen(path: path, group: getgid())
        }
        var st = stat()
        let owners = try APIServer.listen(path: path, group: nil)
        #expect(stat(path, &st) == 0 && st.st_mode & 0o7777 == 0o600)
        close(owners)
        #expect(chown(directory, getuid(), getgid()) == 0 && chmod(directory, 0o710) == 0)
        let shared = try APIServer.listen(path: path, group: getgid())
        defer { close(shared) }
        #expect(stat(path, &st) == 0 && st.st_mode & 0o7777 == 0o660 && st.st_gid == getgid())
        // Nothing else is left in the directory: the socket was made under another name and moved.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["api.sock"])
    }

    // MARK: Bad input, each named

    @Test func badRequestsAreProblemsNamingWhatWasWrong() throws {
        let fixture = try Fixture()
        let cases: [(String, Int, String)] = [
            (Self.post("/v1/sandboxes", json: #"{"vcpus":0}"#), 400, "--vcpus 0 is out of range: at least 1 vCPU is needed"),
            (Self.post("/v1/sandboxes", json: #"{"vcpus":"two"}"#), 400, "the body is not a valid CreateSandbox: vcpus: expected Int"),
            (Self.post("/v1/sandboxes", json: #"{"name":"../x"}"#), 400, "VM name '../x' is invalid: use 1–64 letters, digits, '.', '_' or '-', not starting with '.' or '-'"),
            (Self.post("/v1/sandboxes", json: #"{"policy":"strict"}"#), 400, "policy strict: this server has no policy directory (momin serve --policies DIR); name a file with a /"),
            (Self.post("/v1/sandboxes", json: "{}", type: "text/plain"), 415, "the body must be application/json"),
            (Self.post("/v1/sandboxes/box/commands", json: #"{"argv":[]}"#), 400, "argv: no command given"),
            (Self.post("/v1/sandboxes/box/commands", json: #"{"argv":["ls"]}"#), 404, "no sandbox named box"),
            ("GET /v1/sandboxes/box HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, "no sandbox named box"),
            ("GET /v1/sandboxes/box/files HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400, "the query must name the guest file: ?path=/absolute/path"),
            ("PATCH /v1/sandboxes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405, "PATCH /v1/sandboxes: allowed are GET, POST"),
            ("GET /v2/things HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, "no operation at GET /v2/things (GET /openapi.json lists them)"),
            ("POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411,
             "request bodies are framed by Content-Length only; Transfer-Encoding is not accepted"),
            ("POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\n{", 400, "Content-Length must be one run of at most 19 digits"),
            ("GET /v1/sandboxes/%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "the path or query has a malformed %-escape"),
        ]
        for (request, status, detail) in cases {
            let answer = try fixture.exchange(request)
            #expect(Self.statuses(answer) == [status], "\(request)")
            #expect(try Self.body(answer)["detail"] as? String == detail, "\(request)")
        }
    }

    /// A body over the limit is refused from its Content-Length, before a byte of it is read or
    /// held; a head past 16 KiB, before it ends.
    @Test func oversizedBodiesAndHeadsAreRefusedBeforeTheyAreRead() throws {
        let fixture = try Fixture()
        let big = "POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{"
        let answer = try fixture.exchange(big)
        #expect(Self.statuses(answer) == [413])
        #expect(try Self.body(answer)["detail"] as? String == "the request body is 2000000 bytes; at most 1048576 are taken here")
        let head = "GET /v1/sandboxes HTTP/1.1\r\nX-Padding: " + String(repeating: "a", count: 20000) + "\r\n\r\n"
        #expect(Self.statuses(try fixture.exchange(head)) == [431])
    }

    /// Requests follow one another on one connection until the client closes it.
    @Test func aConnectionServesRequestsInTurn() throws {
        let fixture = try Fixture()
        let one = "GET /v1/sandboxes HTTP/1.1\r\nHost: x\r\n\r\n"
        let answer = try fixture.exchange(one + "GET /v1/sandboxes/nope HTTP/1.1\r\nHost: x\r\n\r\n" + one)
        #expect(Self.statuses(answer) == [200, 404, 200])
        #expect(answer.contains(#"{"sandboxes":[]}"#))
        // A body on a request that takes none is not read as the next request: the connection
        // ends after the answer, which says so.
        let smuggled = "GET /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 39\r\n\r\n" + "GET /v1/sandboxes/smuggled HTTP/1.1\r\n\r\n"
        let closed = try fixture.exchange(smuggled)
        #expect(Self.statuses(closed) == [200])
        #expect(closed.contains("Connection: close\r\n"))
    }

    /// A policy by name comes from the server's directory, never from elsewhere.
    @Test func aPolicyNameIsLookedUpInThePolicyDirectoryOnly() throws {
        var template = Array("/tmp/momin-policies-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fixture = try Fixture(policies: directory)
        let answer = try fixture.exchange(Self.post("/v1/sandboxes", json: #"{"policy":"strict"}"#))
        #expect(try Self.body(answer)["detail"] as? String == "policy strict: no strict.yaml, .yml or .json in \(directory)")
        let escape = try fixture.exchange(Self.post("/v1/sandboxes", json: #"{"policy":".hidden"}"#))
        #expect(try Self.body(escape)["detail"] as? String == "policy .hidden: not a policy name")
    }
}

/// Every field of each wire type set, so that its encoding shows every key.
enum Samples {
    static var create: CreateSandbox {
        var value = CreateSandbox()
        value.name = "n"; value.image = "debian"; value.vcpus = 1; value.memoryMiB = 256; value.timeoutSeconds = 0
        value.idleTimeoutSeconds = 60; value.kernel = "k"; value.initrd = "i"; value.cmdline = "c"; value.disks = ["d"]
        value.overlay = "1g"; value.scratch = "1g"; value.entropySeed = "00"; value.policy = "p"; value.audit = "a"
        value.auditKey = "k"; value.witness = "w"; value.buckets = "b"
        return value
    }
    static let info = SandboxInfo(name: "n", state: "running", pid: 1, vcpus: 1, memoryMiB: 256, parent: "p", children: [], managed: true,
                                  idleTimeoutSeconds: 60, createdBy: "uid=0")
    static var command: RunCommand {
        var value = RunCommand(argv: ["ls"])
        value.cwd = "/"; value.env = ["A=B"]; value.stdin = ""; value.timeoutSeconds = 1; value.background = false
        return value
    }
    static var event: CommandEvent {
        var value = CommandEvent(type: "exit")
        value.exitCode = 0; value.data = ""; value.signal = 9; value.timedOut = false; value.problem = problem
        return value
    }
    static let problem = Problem(status: 403, title: "t", detail: "d", type: "about:blank", rule: "r", reason: "why")
    static let written = WrittenFile(path: "/p", bytes: 1)
}
