import Audit
import Crypto
import Egress
import Foundation
import Gateway
import Glibc
import Merkle
import Policy
import POSIX
import Synchronization
import Testing
import TLSTestSupport

/// The relay end to end: the guest's side is one end of a socketpair, the far end a real TCP
/// server on 127.0.0.1, the log a real audit log; names resolve through a table.
@Suite struct EgressRelayTests {
    /// A loopback server: each connection's request bytes are kept, and it answers with
    /// `reply` then closes (or, echoing, sends back what it reads until the client half-closes).
    final class Server: @unchecked Sendable {
        let fd: Int32
        let port: UInt16
        let received = Mutex<[[UInt8]]>([])
        let accepted = Atomic<Int>(0)

        init(reply: [UInt8]? = nil, echo: Bool = false) throws {
            let (fd, port) = try listenOnLoopback()
            self.fd = fd
            self.port = port
            try POSIXThread.detach(name: "test-server") { [self] in
                while true {
                    let client = accept(fd, nil, nil)
                    if client < 0 { return }
                    accepted.add(1, ordering: .relaxed)
                    try? POSIXThread.detach(name: "test-conn") { [self] in
                        defer { close(client) }
                        var got: [UInt8] = []
                        var chunk = [UInt8](repeating: 0, count: 65536)
                        while true {
                            if !echo, let end = Self.requestEnd(got) , got.count >= end { break }
                            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                            if n <= 0 { break }
                            got += chunk[0..<n]
                            if echo { _ = try? FileIO.sendAll(client, chunk[0..<n]) }
                        }
                        received.withLock { $0.append(got) }
                        if let reply { _ = try? FileIO.sendAll(client, reply) }
                    }
                }
            }
        }

        /// Where a request with a Content-Length body ends.
        static func requestEnd(_ bytes: [UInt8]) -> Int? {
            guard case .success(let head?) = HTTPHeadLength.of(bytes) else { return nil }
            let text = String(decoding: bytes[0..<head], as: UTF8.self).lowercased()
            let length = text.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
            return head + length
        }

        func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
    }

    struct Table: HostResolver {
        var names: [String: [IPAddress]]
        func addresses(of name: String) -> Result<[IPAddress], ResolveFailure> {
            names[name].map { .success($0) } ?? .failure(ResolveFailure("unknown name"))
        }
    }

    struct Rig {
        let dir: String
        let log: AuditLog
        let relay: EgressRelay
        let session: GovernedSession

        init(policy text: String, names: [String: [IPAddress]] = [:], tape: SessionTape? = nil) throws {
            dir = try makeTemporaryDirectory()
            log = try AuditLog(path: dir + "/audit.db", options: AuditLog.Options(keyPath: dir + "/audit.key"))
            let policy = try AgentPolicy.parse(text, format: .yaml, file: "egress.yaml")
            session = GovernedSession(agent: "web", policy: policy, log: log, resolver: LexicalPaths())
            var configuration = EgressConfiguration()
            configuration.headDeadline = 5
            configuration.idleTimeout = 5
            relay = EgressRelay(governed: GovernedEgress(session: session), resolver: Table(names: names), configuration: configuration,
                                tape: tape)
        }

        /// Sends `request` as the guest would, half-closes when asked, and returns all the relay wrote back.
        func exchange(_ request: [UInt8], halfClose: Bool = false, entry: EgressEntry = .proxy) throws -> String {
            String(decoding: try exchangeBytes(request, halfClose: halfClose, entry: entry), as: UTF8.self)
        }

        func exchangeBytes(_ request: [UInt8], halfClose: Bool = false, entry: EgressEntry = .proxy) throws -> [UInt8] {
            try relayExchange(relay, request, halfClose: halfClose, entry: entry)
        }

        func events() throws -> [AuditEvent] { try AuditReader.records(path: dir + "/audit.db").map(\.event) }

        func close() {
            try? log.close()
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    static func policy(port: UInt16, extra: String = "") -> String {
        """
        version: 1
        agent: web
        network:
          egress:
            - host: 127.0.0.1/32
              scheme: http
              ports: [\(port)]
              methods: [GET, POST]
              paths: [/ok/**]
            - host: tunnel.test
              scheme: tls
              ports: [\(port)]
            - host: 127.0.0.1/32
              scheme: tls
              ports: [\(port)]
            - host: private.test
              scheme: tls
              ports: [\(port)]
        \(extra)
        """
    }

    @Test func anAllowedPlainRequestIsForwardedOnceAndLogged() throws {
        let server = try Server(reply: Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".utf8))
        defer { server.stop() }
        let rig = try Rig(policy: Self.policy(port: server.port))
        defer { rig.close() }
        let request = "POST http://127.0.0.1:\(server.port)/ok/a?b=1 HTTP/1.1\r\nHost: elsewhere\r\nProxy-Authorization: x\r\n"
            + "Content-Length: 4\r\n\r\nbody" + "GET http://127.0.0.1:\(server.port)/ok/smuggled HTTP/1.1\r\n\r\n"
        let answer = try rig.exchange(Array(request.utf8))
        #expect(answer == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        let got = server.received.withLock { $0 }
        #expect(got.count == 1)
        let forwarded = String(decoding: got.first ?? [], as: UTF8.self)
        #expect(forwarded == "POST /ok/a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody")
        let events = try rig.events()
        #expect(events.map(\.kind) == ["tool-request", "decision", "result-digest", "connection-end"])
        guard case .toolRequest(let call) = events[0], case .decision(let decision) = events[1],
              case .resultDigest(let result) = events[2], case .connectionEnd(let end) = events[3] else { return }
        #expect(call.tool == "egress-http")
        #expect(String(decoding: call.arguments, as: UTF8.self)
            == "host=127.0.0.1\nport=\(server.port)\nscheme=http\nmethod=POST\ntarget=/ok/a?b=1\nresolved=\n")
        #expect(decision.verdict == .allow && decision.rule.hasPrefix("network.egress"))
        #expect(end.address == "127.0.0.1:\(server.port)" && end.end == "closed" && end.bytesReceived == 40)
        #expect(end.bytesSent == UInt64(forwarded.utf8.count))
        #expect(result.byteCount == 40 && result.sha256 == MerkleHash(bytes: Array(SHA256Digest.of(Array(answer.utf8))))!)
    }

    /// A rule with log_content keeps what went each way in the connection's end record.
    @Test func logContentKeepsBothDirectionsOfAPlainRequest() throws {
        let reply = Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfound".utf8)
        let server = try Server(reply: reply)
        defer { server.stop() }
        let policy = Self.policy(port: server.port).replacingOccurrences(of: "      paths: [/ok/**]\n", with: "      paths: [/ok/**]\n      log_content: true\n")
        let rig = try Rig(policy: policy)
        defer { rig.close() }
        _ = try rig.exchange(Array("GET http://127.0.0.1:\(server.port)/ok/kept HTTP/1.1\r\n\r\n".utf8))
        guard case .connectionEnd(let end)? = try rig.events().last else { Issue.record("no end"); return }
        #expect(String(decoding: end.sentContent, as: UTF8.self)
            == "GET /ok/kept HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\nConnection: close\r\n\r\n")
        #expect(end.receivedContent == reply)
        // Without it, nothing is kept.
        let plain = try Rig(policy: Self.policy(port: server.port))
        defer { plain.close() }
        _ = try plain.exchange(Array("GET http://127.0.0.1:\(server.port)/ok/kept HTTP/1.1\r\n\r\n".utf8))
        guard case .connectionEnd(let bare)? = try plain.events().last else { Issue.record("no end"); return }
        #expect(bare.sentContent.isEmpty && bare.receivedContent.isEmpty && bare.bytesReceived == UInt64(reply.count))
    }

    /// A `.deb` under an apt mirror (packages.apt, no network.egress at all): judged by its
    /// package's name, logged with it, its result the body's own size and SHA-256; a package
    /// the policy does not list is refused before any connection.
    @Test func anAptMirrorsPackagesAreJudgedByNameAndLoggedByTheirOwnDigest() throws {
        let deb = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let server = try Server(reply: Array("HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n".utf8) + deb)
        defer { server.stop() }
        let rig = try Rig(policy: """
            version: 1
            agent: web
            packages:
              apt:
                mirrors: [http://127.0.0.1:\(server.port)/debian]
                allow: [momin-tool]
            """)
        defer { rig.close() }
        let pool = "http://127.0.0.1:\(server.port)/debian/pool/main/m"
        let answer = try rig.exchangeBytes(Array("GET \(pool)/momin-tool/momin-tool_1.0_all.deb HTTP/1.1\r\n\r\n".utf8))
        #expect(Array(answer.suffix(3000)) == deb)
        let refused = try rig.exchange(Array("GET \(pool)/momin-bad/momin-bad_1.0_all.deb HTTP/1.1\r\n\r\n".utf8))
        #expect(refused.hasPrefix("HTTP/1.1 403 Forbidden\r\n") && refused.contains("apt package \"momin-bad\" is not among packages.apt.allow"))
        #expect(server.accepted.load(ordering: .relaxed) == 1)

        let events = try rig.events()
        guard case .toolRequest(let call) = events[0], case .decision(let decision) = events[1],
              case .resultDigest(let result) = events[2] else { Issue.record("\(events)"); return }
        #expect(String(decoding: call.arguments, as: UTF8.self) == "host=127.0.0.1\nport=\(server.port)\nscheme=http\nmethod=GET\n"
            + "target=/debian/pool/main/m/momin-tool/momin-tool_1.0_all.deb\nresolved=\npackage=momin-tool\nfile=momin-tool_1.0_all.deb\n")
        #expect(decision.verdict == .allow && decision.rule == "packages.apt.allow[0]")
        #expect(result.status == 0 && result.byteCount == 3000 && result.sha256 == MerkleHash(bytes: SHA256Digest.of(deb))!)
        let denied = events.compactMap { event -> Audit.Decision? in if case .decision(let d) = event, d.verdict == .deny { d } else { nil } }
        #expect(denied.map(\.rule) == ["packages.apt"])
    }

    @Test func deniedRequestsNeverReachTheFarEnd() throws {
        let server = try Server(reply: Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8))
        defer { server.stop() }
        let rig = try Rig(policy: Self.policy(port: server.port))
        defer { rig.close() }
        for request in ["DELETE http://127.0.0.1:\(server.port)/ok/a HTTP/1.1\r\n\r\n",     // method
                        "GET http://127.0.0.1:\(server.port)/other HTTP/1.1\r\n\r\n",        // path
                        "GET http://127.0.0.1:\(server.port)/ok/../other HTTP/1.1\r\n\r\n",  // not normal
                        "GET http://example.com/ok/a HTTP/1.1\r\n\r\n"] {                    // host
            let answer = try rig.exchange(Array(request.utf8))
            #expect(answer.hasPrefix("HTTP/1.1 403 Forbidden\r\n") && answer.contains("X-Momin-Decision: deny "), "\(request): \(answer)")
        }
        #expect(server.accepted.load(ordering: .relaxed) == 0)
        let decisions = try rig.events().compactMap { event -> Audit.Decision? in if case .decision(let d) = event { d } else { nil } }
        #expect(decisions.count == 4 && decisions.allSatisfy { $0.verdict == .deny })
    }

    @Test func aTunnelCarriesBytesBothWaysToAResolvedAddress() throws {
        let server = try Server(echo: true)
        defer { server.stop() }
        let rig = try Rig(policy: Self.policy(port: server.port), names: ["tunnel.test": [.v4(0x7F00_0001)]])
        defer { rig.close() }
        let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let answer = try rig.exchangeBytes(Array("CONNECT tunnel.test:\(server.port) HTTP/1.1\r\n\r\n".utf8) + payload, halfClose: true)
        let established = Array("HTTP/1.1 200 Connection Established\r\n\r\n".utf8)
        #expect(answer.starts(with: established))
        // Compared first: a failing #expect on two 300 KB arrays would spend minutes on its diff.
        let echoed = Array(answer.dropFirst(established.count)) == payload
        #expect(echoed, "\(answer.count) bytes came back")
        guard case .connectionEnd(let end)? = try rig.events().last else { Issue.record("no end"); return }
        #expect(end.bytesSent == 300_000 && end.bytesReceived == 300_000 && end.end == "closed")
    }

    /// A name the policy allows that resolves to a private address is refused, and a name it
    /// does not allow is never looked up.
    @Test func namesResolvingToSpecialAddressesAreRefused() throws {
        let rig = try Rig(policy: Self.policy(port: 9), names: ["private.test": [.v4(0x0A00_0001)], "other.test": [.v4(0x0808_0808)]])
        defer { rig.close() }
        let answer = try rig.exchange(Array("CONNECT private.test:9 HTTP/1.1\r\n\r\n".utf8))
        #expect(answer.hasPrefix("HTTP/1.1 403 ") && answer.contains("10.0.0.1"))
        let other = try rig.exchange(Array("CONNECT other.test:9 HTTP/1.1\r\n\r\n".utf8))
        #expect(other.hasPrefix("HTTP/1.1 403 "))
        let requests = try rig.events().compactMap { event -> String? in
            if case .toolRequest(let r) = event { String(decoding: r.arguments, as: UTF8.self) } else { nil }
        }
        #expect(requests == ["host=private.test\nport=9\nscheme=tls\nresolved=10.0.0.1\n", "host=other.test\nport=9\nscheme=tls\nresolved=\n"])
    }

    @Test func theSessionsByteCapCutsAConnection() throws {
        let server = try Server(echo: true)
        defer { server.stop() }
        let rig = try Rig(policy: Self.policy(port: server.port, extra: "  limits:\n    bytes_per_session: 1KiB"),
                          names: ["tunnel.test": [.v4(0x7F00_0001)]])
        defer { rig.close() }
        let answer = try rig.exchange(Array("CONNECT tunnel.test:\(server.port) HTTP/1.1\r\n\r\n".utf8) + [UInt8](repeating: 7, count: 4096))
        #expect(answer.utf8.count < 39 + 1024)
        guard case .connectionEnd(let end)? = try rig.events().last else { Issue.record("no end"); return }
        #expect(end.end.hasPrefix("limit: network.limits.bytes_per_session") && end.bytesSent + end.bytesReceived <= 1024)
        // The next connection is refused before it is made.
        let next = try rig.exchange(Array("CONNECT tunnel.test:\(server.port) HTTP/1.1\r\n\r\n".utf8))
        #expect(next.hasPrefix("HTTP/1.1 429 ") && next.contains("network.limits.bytes_per_session"))
    }

    @Test func malformedHeadsAreAnsweredWithoutALogEntryOrAConnection() throws {
        let rig = try Rig(policy: Self.policy(port: 9))
        defer { rig.close() }
        #expect(try rig.exchange(Array("GET http://a.example/ HTTP/1.1\nHost: a\n\n".utf8)).hasPrefix("HTTP/1.1 400 "))
        #expect(try rig.exchange(Array("GET /relative HTTP/1.1\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 400 "))
        #expect(try rig.exchange([UInt8](repeating: 65, count: 20_000)).hasPrefix("HTTP/1.1 431 "))
        #expect(try rig.events().isEmpty)
    }
}

/// Sends `request` to `relay` as the guest would (the guest's side a socketpair), half-closes
/// when asked, and returns all the relay wrote back once it is done.
func relayExchange(_ relay: EgressRelay, _ request: [UInt8], halfClose: Bool = false, entry: EgressEntry = .proxy) throws -> [UInt8] {
    var pair: [Int32] = [0, 0]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else { throw POSIXError(.EMFILE) }
    let (guest, host) = (pair[0], pair[1])
    let done = Atomic<Bool>(false)
    try POSIXThread.detach(name: "relay") {
        relay.serve(host, entry: entry)
        done.store(true, ordering: .releasing)
    }
    // Written on a thread of its own: a tunnel echoes while the rest is still going out.
    try POSIXThread.detach(name: "guest-writer") {
        _ = try? FileIO.sendAll(guest, request)
        if halfClose { shutdown(guest, Int32(SHUT_WR)) }
    }
    let answer = try FileIO.readAll(guest, limit: 64 << 20)
    Glibc.close(guest)
    let deadline = MonotonicClock.deadline(after: 10)
    while !done.load(ordering: .acquiring) && MonotonicClock.nanoseconds() < deadline { usleep(1000) }
    return answer
}

func makeTemporaryDirectory() throws -> String {
    var template = Array("/tmp/momin-egress-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
    return String(cString: made)
}

/// Paths as written (egress calls have none).
struct LexicalPaths: PathResolver {
    func canonicalPath(_ path: String, followFinalSymlink: Bool) -> String? { path }
}

enum HTTPHeadLength {
    static func of(_ bytes: [UInt8]) -> Result<Int?, Error> {
        for index in 0..<max(0, bytes.count - 3) where bytes[index..<index + 4].elementsEqual([13, 10, 13, 10]) { return .success(index + 4) }
        return .success(nil)
    }
}

enum SHA256Digest {
    static func of(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
}
