import APIServer
import Crypto
import Foundation
import Glibc
import Host
import Images
import Merkle
import Policy
import POSIX
import Testing

/// `momin serve --tcp`: the token file, the endpoint's text, and requests over a real loopback
/// TCP connection, which must each carry a registered bearer token.
@Suite struct TCPTokenTests {
    func temporaryDirectory() throws -> String {
        var template = Array("/tmp/momin-tokens-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError("mkdtemp") }
        return String(cString: made)
    }

    func write(_ text: String, to path: String, mode: mode_t) throws {
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError("open \(path)") }
        defer { close(fd) }
        fchmod(fd, mode)
        try FileIO.writeAll(fd, Array(text.utf8))
    }

    /// The message of the HostError `body` throws; nil if it throws none.
    func message(_ body: () throws -> Void) -> String? {
        do { try body() } catch { return (error as? HostError)?.message ?? "\(error)" }
        return nil
    }

    @Test func theTokenFileIsCheckedBeforeItIsUsed() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/tokens"
        let digest = String(repeating: "ab", count: 32)
        try write("# CI and a person\nci sha256:\(digest)\n\nalice\tsha256:\(digest.uppercased())\n", to: path, mode: 0o600)
        let loaded = try BearerTokens.load(path)
        #expect(loaded.entries.map(\.name) == ["ci", "alice"])
        #expect(loaded.entries[1].digest == [UInt8](repeating: 0xab, count: 32))

        try write("ci sha256:\(digest)\n", to: path, mode: 0o640)
        #expect(message { _ = try BearerTokens.load(path) } == "--tokens \(path): mode 640 lets others at it; chmod 600 it")
        let cases = [
            ("ci sha256:\(digest)\nbob\n", "line 2: expected NAME sha256:HEX"),
            ("ci sha256:\(digest.dropLast())\n", "line 1: the token's digest must be sha256: and 64 hex digits (momin serve --add-token makes one)"),
            ("ci md5:\(digest)\n", "line 1: the token's digest must be sha256: and 64 hex digits (momin serve --add-token makes one)"),
            ("c/i sha256:\(digest)\n", "line 1: c/i is not a token name (1 to 64 of A-Z a-z 0-9 . _ -)"),
            ("ci sha256:\(digest)\nci sha256:\(digest)\n", "line 2: ci is named twice"),
        ]
        for (text, why) in cases {
            try write(text, to: path, mode: 0o600)
            #expect(message { _ = try BearerTokens.load(path) } == "--tokens \(path): \(why)")
        }
        symlink(path, dir + "/link")
        #expect(message { _ = try BearerTokens.load(dir + "/link") }?.hasPrefix("--tokens \(dir)/link: ") == true)
        // Past 1 MiB the file is refused by its size, before a byte of it is read.
        let oversized = String(repeating: "# padding\n", count: (1 << 20) / 10 + 1)
        try write(oversized, to: path, mode: 0o600)
        #expect(message { _ = try BearerTokens.load(path) } == "--tokens \(path): \(oversized.utf8.count) bytes; at most 1048576 are read")
        mkdir(dir + "/directory", 0o700)
        #expect(message { _ = try BearerTokens.load(dir + "/directory") } == "--tokens \(dir)/directory: not a regular file")
    }

    @Test func anAddedTokenIsPrintedOnceAndKeptAsItsDigest() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/tokens"
        let token = try BearerTokens.add(name: "ci", to: path)
        #expect(token.hasPrefix("momin_") && token.utf8.count == 6 + 43)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains(token.dropFirst(6)))
        #expect(text == "ci sha256:\(Hex.encode(Array(SHA256.hash(data: Array(token.utf8)))))\n")
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(message { _ = try BearerTokens.add(name: "ci", to: path) } == "--add-token ci: \(path) already has it")
        let second = try BearerTokens.add(name: "alice", to: path)
        #expect(second != token)

        let tokens = try BearerTokens.load(path)
        #expect(tokens.admit(authorization: "Bearer \(token)", peer: "p") == .token("ci", peer: "p"))
        #expect(tokens.admit(authorization: "bearer  \(second) ", peer: "p") == .token("alice", peer: "p"))
        for refused in [nil, "", "Bearer", "Bearer ", "Basic \(token)", "Bearer \(token)x", "Bearer \(token.dropLast())",
                        "Bearer " + String(repeating: "a", count: 100_000)] {
            #expect(tokens.admit(authorization: refused, peer: "p") == nil, "\(refused?.prefix(40) ?? "nil")")
        }
    }

    @Test func endpointsAreAddressesAndPorts() {
        func parsed(_ text: String) -> String {
            switch TCPEndpoint.parse(text) {
            case .success(let endpoint): "\(endpoint) \(endpoint.isLoopback ? "loopback" : "open")"
            case .failure(let problem): problem.message
            }
        }
        #expect(parsed("8700") == "127.0.0.1:8700 loopback")
        #expect(parsed("127.3.0.1:0") == "127.3.0.1:0 loopback")
        #expect(parsed("0.0.0.0:8700") == "0.0.0.0:8700 open")
        #expect(parsed("[::1]:9") == "[::1]:9 loopback")
        #expect(parsed("::1:9") == "::1:9: write an IPv6 address in brackets, [::1]:PORT")
        #expect(parsed("localhost:80") == "localhost:80: localhost is not an IPv4 or IPv6 address")
        #expect(parsed("70000") == "70000: the port must be a number from 0 to 65535 (PORT, A.B.C.D:PORT or [IPV6]:PORT)")
        #expect(parsed("1.2.3.4:") == "1.2.3.4:: the port must be a number from 0 to 65535 (PORT, A.B.C.D:PORT or [IPV6]:PORT)")
        #expect(parsed("1.2.3.4:+80") == "1.2.3.4:+80: the port must be a number from 0 to 65535 (PORT, A.B.C.D:PORT or [IPV6]:PORT)")
    }

    /// Over a real loopback connection: a request without a token, or with one the server does
    /// not know, is 401 and ends the connection; a known token is answered as its name's, which
    /// may not name host paths.
    @Test func everyTCPRequestNeedsAKnownToken() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let token = try BearerTokens.add(name: "ci", to: dir + "/tokens")
        mkdir(dir + "/runtime", 0o700)
        mkdir(dir + "/vms", 0o700)
        var environment = HostEnvironment(runtimeDirectory: dir + "/runtime", registryDirectory: dir + "/vms", momin: nil,
                                          vmm: dir + "/momin-vmm", jailer: dir + "/momin-jailer")
        environment.warn = { _ in }
        let sandboxes = try Sandboxes(environment: environment, images: ImageStore(root: dir + "/images"), configuration: .init())
        let server = APIServer(sandboxes: sandboxes, callers: CallerPolicy(), tokens: try BearerTokens.load(dir + "/tokens"))
        let (listener, bound) = try TCPEndpoint(address: .v4(0x7F00_0001), port: 0).listen()
        defer { close(listener) }
        #expect(bound.port != 0)

        func exchange(_ text: String) throws -> String {
            let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard client >= 0 else { throw SystemError("socket") }
            defer { close(client) }
            let connected = bound.address.withSocketAddress(port: bound.port) { connect(client, $0, $1) }
            guard connected == 0 else { throw SystemError("connect") }
            let accepted = accept(listener, nil, nil)
            guard accepted >= 0 else { throw SystemError("accept") }
            let thread = try POSIXThread(name: "api-tcp-test") { server.serveTCP(accepted) }
            defer { thread.join() }
            try FileIO.sendAll(client, Array(text.utf8))
            shutdown(client, Int32(SHUT_WR))
            var answer: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { break }
                answer += buffer[0..<n]
            }
            return String(decoding: answer, as: UTF8.self)
        }

        let list = "GET /v1/sandboxes HTTP/1.1\r\nHost: x\r\n"
        let none = try exchange(list + "\r\n" + list + "Authorization: Bearer \(token)\r\n\r\n")
        #expect(APIServerTests.statuses(none) == [401], "the connection ends at the first refusal")
        #expect(none.contains("WWW-Authenticate: Bearer realm=\"momin\"\r\n") && none.contains("Connection: close\r\n"))
        #expect(try APIServerTests.body(none)["detail"] as? String
                == "this request needs Authorization: Bearer and a token this server knows (momin serve --tokens)")
        #expect(APIServerTests.statuses(try exchange(list + "Authorization: Bearer momin_wrong\r\n\r\n")) == [401])
        #expect(APIServerTests.statuses(try exchange("GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")) == [401])

        // Keep-alive: each request is judged on its own token.
        let both = try exchange(list + "Authorization: Bearer \(token)\r\n\r\n" + list + "\r\n")
        #expect(APIServerTests.statuses(both) == [200, 401])
        #expect(both.contains(#"{"sandboxes":[]}"#))

        let json = #"{"kernel":"/boot/vmlinuz"}"#
        let named = try exchange("POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\n"
                                 + "Content-Length: \(json.utf8.count)\r\n\r\n\(json)")
        #expect(APIServerTests.statuses(named) == [403])
        #expect(try APIServerTests.body(named)["detail"] as? String
                == "kernel: only this server's owner may name host paths or boot settings; use image and policy names (docs/api.md, \"Who may call\")")
    }
}
