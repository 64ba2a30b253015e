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
import TLS
import TLSTestSupport

/// The Brain relay end to end: the guest's side is one end of a socketpair, the provider a real
/// TCP server on 127.0.0.1 answering with bytes a test chose, the log a real audit log.
@Suite struct BrainRelayTests {
    typealias Server = EgressRelayTests.Server

    struct Rig {
        let dir: String
        let log: AuditLog
        let relay: EgressRelay
        let session: GovernedSession

        init(port: UInt16, brain extra: String = "", slack: Int = 16, key: String? = "sk-host-secret", tape: SessionTape? = nil) throws {
            try self.init(baseURL: "http://127.0.0.1:\(port)/v1", brain: extra, slack: slack, key: key, tape: tape)
        }

        init(baseURL: String, brain extra: String = "", slack: Int = 16, key: String? = "sk-host-secret", trust: TLSTrust = .system,
             names: [String: [IPAddress]] = [:], bodyDeadline: Double = 5, tape: SessionTape? = nil) throws {
            dir = try makeTemporaryDirectory()
            log = try AuditLog(path: dir + "/audit.db", options: AuditLog.Options(keyPath: dir + "/audit.key"))
            let text = """
                version: 1
                agent: thinker
                brain:
                  base_url: \(baseURL)
                  models: ["gpt-4o*"]
                \(extra)
                """
            let policy = try AgentPolicy.parse(text, format: .yaml, file: "brain.yaml")
            session = GovernedSession(agent: "thinker", policy: policy, log: log, resolver: LexicalPaths())
            var configuration = BrainConfiguration()
            configuration.bodyDeadline = bodyDeadline
            configuration.idleTimeout = 5
            configuration.streamSlack = slack
            configuration.trust = trust
            let credential = try key.map { try BrainCredential.parse(Array($0.utf8), source: "test").get() }
            let brain = BrainRelay(governed: GovernedBrain(session: session), credential: credential,
                                   resolver: EgressRelayTests.Table(names: names), configuration: configuration, tape: tape)
            var egress = EgressConfiguration()
            egress.headDeadline = 5
            relay = EgressRelay(governed: GovernedEgress(session: session), configuration: egress, brain: brain, tape: tape)
        }

        func exchange(_ request: String, entry: EgressEntry = .brain) throws -> String {
            String(decoding: try relayExchange(relay, Array(request.utf8), entry: entry), as: UTF8.self)
        }

        func events() throws -> [AuditEvent] { try AuditReader.records(path: dir + "/audit.db").map(\.event) }

        func close() {
            try? log.close()
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    static func post(_ body: String, path: String = "/v1/chat/completions", extra: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: brain.momin\r\nAuthorization: Bearer guest-made-up\r\nContent-Type: application/json\r\n\(extra)"
            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    static func response(_ body: String, status: String = "200 OK", type: String = "application/json") -> [UInt8] {
        Array("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
    }

    /// `data:` events in the chunked transfer coding, each event its own chunk.
    static func chunkedStream(_ events: [String]) -> [UInt8] {
        var out = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        for event in events {
            let text = "data: \(event)\n\n"
            out += String(text.utf8.count, radix: 16) + "\r\n" + text + "\r\n"
        }
        return Array((out + "0\r\n\r\n").utf8)
    }

    static func digest(_ text: String) -> MerkleHash { MerkleHash(bytes: Array(SHA256.hash(data: Array(text.utf8))))! }

    /// The body and head the provider got.
    static func received(_ server: Server) -> (head: String, body: String) {
        let text = String(decoding: server.received.withLock { $0.first ?? [] }, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return (text, "") }
        return (String(text[..<split.lowerBound]), String(text[split.upperBound...]))
    }

    @Test func aCallGoesToThePolicysProviderWithTheHostsKeyACapAndIsLoggedWithItsUsage() throws {
        let reply = #"{"id":"c1","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#
        let server = try Server(reply: Self.response(reply))
        defer { server.stop() }
        let rig = try Rig(port: server.port, brain: "  max_tokens_per_call: 100\n  log_content: true")
        defer { rig.close() }
        let body = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"temperature":0.70}"#
        let answer = try rig.exchange(Self.post(body))
        #expect(answer == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(reply.utf8.count)\r\nConnection: close\r\n\r\n" + reply)
        let (head, sent) = Self.received(server)
        let expectedBody = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"temperature":0.70,"max_completion_tokens":100}"#
        #expect(sent == expectedBody)
        #expect(head.hasPrefix("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\n"))
        #expect(head.contains("\r\nAuthorization: Bearer sk-host-secret"))
        #expect(!head.contains("guest-made-up"))
        let events = try rig.events()
        #expect(events.map(\.kind) == ["tool-request", "decision", "result-digest", "brain-call"])
        guard case .toolRequest(let request) = events[0], case .resultDigest(let result) = events[2],
              case .brainCall(let call) = events[3] else { return }
        #expect(String(decoding: request.arguments, as: UTF8.self)
            == "model=gpt-4o-mini\nmax_tokens=none\nstream=false\nbody_sha256=\(Self.digest(body).hex)\n")
        #expect(result.status == 200 && result.sha256 == Self.digest(reply))
        #expect(call.model == "gpt-4o-mini" && call.status == 200 && call.usage == .reported)
        #expect(call.promptTokens == 5 && call.completionTokens == 2 && call.end == "complete")
        #expect(call.requestSHA256 == Self.digest(expectedBody) && call.responseSHA256 == Self.digest(reply))
        #expect(call.requestContent == Array(expectedBody.utf8) && call.responseContent == Array(reply.utf8))
        #expect(rig.relay.brain?.governed.tokensUsed == 7)
    }

    @Test func aStreamPassesEventByEventWithUsageAskedForAndCounted() throws {
        let chunks = [
            #"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            #"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            #"{"choices":[{"index":0,"delta":{"content":"lo"}}]}"#,
            #"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
            "[DONE]",
        ]
        let server = try Server(reply: Self.chunkedStream(chunks))
        defer { server.stop() }
        let rig = try Rig(port: server.port)
        defer { rig.close() }
        let body = #"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false},"messages":[]}"#
        let answer = try rig.exchange(Self.post(body))
        let expected = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
            + chunks.map { "data: \($0)\n\n" }.joined()
        #expect(answer == expected)
        #expect(Self.received(server).body == #"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#)
        guard case .brainCall(let call)? = try rig.events().last else { Issue.record("no brain-call"); return }
        #expect(call.usage == .reported && call.promptTokens == 9 && call.completionTokens == 2 && call.end == "complete")
        #expect(call.responseSHA256 == Self.digest(chunks.map { "data: \($0)\n\n" }.joined()))
    }

    @Test func aStreamPastItsCapWithoutUsageIsCutWithAnErrorEvent() throws {
        let content = #"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#
        let server = try Server(reply: Self.chunkedStream(Array(repeating: content, count: 12) + ["[DONE]"]))
        defer { server.stop() }
        let rig = try Rig(port: server.port, brain: "  max_tokens_per_call: 3", slack: 2)
        defer { rig.close() }
        let answer = try rig.exchange(Self.post(#"{"model":"gpt-4o","stream":true,"messages":[]}"#))
        // 3 + 2 chunks pass; the sixth is replaced by the error event and the stream ends.
        #expect(answer.components(separatedBy: "data: \(content)\n\n").count - 1 == 5)
        #expect(answer.hasSuffix("data: {\"error\":{\"message\":\"momin: the stream went past the 3 completion tokens this call was given\",\"type\":\"momin_limit\",\"code\":null}}\n\n"))
        #expect(!answer.contains("[DONE]"))
        #expect(Self.received(server).body.contains("\"max_completion_tokens\":3"))
        guard case .brainCall(let call)? = try rig.events().last else { Issue.record("no brain-call"); return }
        #expect(call.end == "limit: more than the 3 completion tokens the call was given")
        #expect(call.usage == .estimated && call.completionTokens == 6)
    }

    @Test func refusalsAreOpenAIErrorsThatSayNotToRetryAndNothingReachesTheProvider() throws {
        let server = try Server(reply: Self.response("{}"))
        defer { server.stop() }
        let rig = try Rig(port: server.port, brain: "  max_tokens_per_call: 100\n  max_requests: 1")
        defer { rig.close() }
        let model = try rig.exchange(Self.post(#"{"model":"claude-3","messages":[]}"#))
        #expect(model.hasPrefix("HTTP/1.1 403 Forbidden\r\nx-should-retry: false\r\nX-Momin-Decision: deny brain.models: model \"claude-3\" is not among brain.models\r\n"))
        #expect(model.contains("Content-Type: application/json\r\n"))
        #expect(model.hasSuffix(#"{"error":{"message":"momin: deny brain.models: model \"claude-3\" is not among brain.models","type":"momin_denied","code":null}}"# + "\n"))
        let tokens = try rig.exchange(Self.post(#"{"model":"gpt-4o","max_tokens":101,"messages":[]}"#))
        #expect(tokens.hasPrefix("HTTP/1.1 403 "))
        #expect(tokens.contains("101 tokens asked for, at most 100 per call allowed"))
        #expect(server.accepted.load(ordering: .relaxed) == 0)
        _ = try rig.exchange(Self.post(#"{"model":"gpt-4o","messages":[]}"#))
        let requests = try rig.exchange(Self.post(#"{"model":"gpt-4o","messages":[]}"#))
        #expect(requests.hasPrefix("HTTP/1.1 429 Too Many Requests\r\n"))
        #expect(requests.contains("\"type\":\"momin_limit\""))
        #expect(server.accepted.load(ordering: .relaxed) == 1)
        let kinds = try rig.events().map(\.kind)
        #expect(kinds.filter { $0 == "decision" }.count == 4 && kinds.filter { $0 == "brain-call" }.count == 1)
    }

    @Test func badRequestsAreAnsweredByTheRelayAndLogNothing() throws {
        let server = try Server(reply: Self.response("{}"))
        defer { server.stop() }
        let rig = try Rig(port: server.port)
        defer { rig.close() }
        #expect(try rig.exchange(Self.post("{}", path: "/v1/embeddings")).hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(try rig.exchange("GET /v1/chat/completions HTTP/1.1\r\nHost: brain.momin\r\n\r\n").hasPrefix("HTTP/1.1 405 "))
        let chunked = "POST /v1/chat/completions HTTP/1.1\r\nHost: brain.momin\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        #expect(try rig.exchange(chunked).hasPrefix("HTTP/1.1 411 "))
        let noModel = try rig.exchange(Self.post(#"{"messages":[]}"#))
        #expect(noModel.hasPrefix("HTTP/1.1 400 Bad Request\r\n") && noModel.contains("model"))
        let twice = try rig.exchange(Self.post(#"{"model":"gpt-4o","model":"other"}"#))
        #expect(twice.hasPrefix("HTTP/1.1 400 "))
        #expect(try rig.exchange(Self.post(#"{"model":"gpt-4o",}"#)).hasPrefix("HTTP/1.1 400 "))
        // A length over the bound is refused from the head alone, before any body is read.
        let huge = "POST /v1/chat/completions HTTP/1.1\r\nHost: brain.momin\r\nContent-Length: \((8 << 20) + 1)\r\n\r\n{"
        #expect(try rig.exchange(huge).hasPrefix("HTTP/1.1 413 Content Too Large\r\n"))
        #expect(try rig.events().isEmpty)
        #expect(server.accepted.load(ordering: .relaxed) == 0)
    }

    @Test func aBodyThatStopsShortOfItsLengthIsRefusedAtTheDeadline() throws {
        let server = try Server(reply: Self.response("{}"))
        defer { server.stop() }
        let rig = try Rig(baseURL: "http://127.0.0.1:\(server.port)/v1", bodyDeadline: 0.5)
        defer { rig.close() }
        let short = "POST /v1/chat/completions HTTP/1.1\r\nHost: brain.momin\r\nContent-Length: 100\r\n\r\n{\"model\""
        let answer = try rig.exchange(short)
        #expect(answer.hasPrefix("HTTP/1.1 408 Request Timeout\r\n") && answer.contains("the request body did not arrive within"))
        #expect(try rig.events().isEmpty)
        #expect(server.accepted.load(ordering: .relaxed) == 0)
    }

    @Test func theProxysAbsoluteFormReachesTheSameRelay() throws {
        let server = try Server(reply: Self.response(#"{"choices":[]}"#))
        defer { server.stop() }
        let rig = try Rig(port: server.port)
        defer { rig.close() }
        let body = #"{"model":"gpt-4o","messages":[]}"#
        let answer = try rig.exchange(Self.post(body, path: "http://brain.momin/v1/chat/completions"), entry: .proxy)
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"))
        guard case .brainCall(let call)? = try rig.events().last else { Issue.record("no brain-call"); return }
        #expect(call.usage == .none && call.end == "complete")
    }

    @Test func providerErrorsPassThroughAndAnUnreachableProviderIs502() throws {
        let error = #"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#
        let server = try Server(reply: Self.response(error, status: "401 Unauthorized"))
        defer { server.stop() }
        let rig = try Rig(port: server.port, key: nil)
        defer { rig.close() }
        let answer = try rig.exchange(Self.post(#"{"model":"gpt-4o","messages":[]}"#))
        #expect(answer.hasPrefix("HTTP/1.1 401 Unauthorized\r\n") && answer.hasSuffix(error))
        #expect(!Self.received(server).head.contains("Authorization"))
        guard case .brainCall(let call)? = try rig.events().last else { Issue.record("no brain-call"); return }
        #expect(call.status == 401 && call.end == "provider status 401" && call.usage == .none)

        let closed = try Server(reply: nil)
        let port = closed.port
        closed.stop()
        let gone = try Rig(port: port)
        defer { gone.close() }
        let unreachable = try gone.exchange(Self.post(#"{"model":"gpt-4o","messages":[]}"#))
        #expect(unreachable.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        guard case .brainCall(let failed)? = try gone.events().last else { Issue.record("no brain-call"); return }
        #expect(failed.status == 0 && failed.end.hasPrefix("error: connect: 127.0.0.1:\(port): "))
    }

    @Test func theProviderIsAskedForAnUncodedAnswerAndACodedOneIsRefused() throws {
        let server = try Server(reply: Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\n\u{1f}\u{8b}\u{8}".utf8))
        defer { server.stop() }
        let rig = try Rig(port: server.port)
        defer { rig.close() }
        let answer = try rig.exchange(Self.post(#"{"model":"gpt-4o","messages":[]}"#))
        #expect(Self.received(server).head.contains("\r\nAccept-Encoding: identity\r\n"))
        #expect(answer.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n") && answer.contains("gzip-coded answer though asked for identity"))
        guard case .brainCall(let call)? = try rig.events().last else { Issue.record("no brain-call"); return }
        #expect(call.status == 200 && call.end == "error: the provider's response has Content-Encoding gzip")
    }

    /// A Chat Completions provider over TLS (Python's ssl module, the test CA's certificate for
    /// localhost and 127.0.0.1): each answer echoes the Host and Authorization it was sent.
    static let tlsProvider = """
        import json, os, socket, ssl, sys
        cert, key, port_file, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.settimeout(30)
        with open(port_file + ".tmp", "w") as f:
            f.write(str(server.getsockname()[1]))
        os.rename(port_file + ".tmp", port_file)
        for _ in range(count):
            try:
                plain, _ = server.accept()
                tls = context.wrap_socket(plain, server_side=True)
            except (OSError, ssl.SSLError):
                continue
            data = b""
            while b"\\r\\n\\r\\n" not in data:
                more = tls.recv(65536)
                if not more:
                    break
                data += more
            head, _, body = data.partition(b"\\r\\n\\r\\n")
            fields = dict(line.split(": ", 1) for line in head.decode().split("\\r\\n")[1:])
            fields = {name.lower(): value for name, value in fields.items()}
            while len(body) < int(fields.get("content-length", "0")):
                body += tls.recv(65536)
            said = "host=%s auth=%s" % (fields.get("host", ""), fields.get("authorization", ""))
            reply = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": said}}],
                                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}).encode()
            tls.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(reply) + reply)
            try:
                tls.unwrap()
            except (OSError, ssl.SSLError):
                pass
            plain.close()
        """

    @Test func anHTTPSProviderGetsTheCallOverVerifiedTLSAndAWrongNameOrUnknownCAIsRefused() throws {
        let pki = try PKI()
        let portFile = pki.directory + "/port"
        let provider = Process()
        provider.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        provider.arguments = ["-c", Self.tlsProvider, pki.certificate, pki.key, portFile, "3"]
        provider.standardOutput = FileHandle.nullDevice
        try provider.run()
        defer {
            if provider.isRunning { kill(provider.processIdentifier, SIGKILL) }
            provider.waitUntilExit()
        }
        let ready = MonotonicClock.deadline(after: 10)
        while access(portFile, F_OK) != 0 && MonotonicClock.nanoseconds() < ready { usleep(10_000) }
        let port = try #require(UInt16(String(contentsOfFile: portFile, encoding: .utf8)))
        let body = #"{"model":"gpt-4o","messages":[]}"#

        let good = try Rig(baseURL: "https://127.0.0.1:\(port)/v1", trust: .caBundle(path: pki.caFile))
        defer { good.close() }
        let answer = try good.exchange(Self.post(body))
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(answer.contains("host=127.0.0.1:\(port) auth=Bearer sk-host-secret"))
        guard case .brainCall(let call)? = try good.events().last else { Issue.record("no brain-call"); return }
        #expect(call.usage == .reported && call.promptTokens == 3 && call.completionTokens == 4 && call.end == "complete")

        let wrongName = try Rig(baseURL: "https://wrong.test:\(port)/v1", trust: .caBundle(path: pki.caFile),
                                names: ["wrong.test": [.v4(0x7F00_0001)]])
        defer { wrongName.close() }
        let mismatch = try wrongName.exchange(Self.post(body))
        #expect(mismatch.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(mismatch.contains("certificate verify failed: hostname mismatch (wrong.test)"))
        guard case .brainCall(let refused)? = try wrongName.events().last else { Issue.record("no brain-call"); return }
        #expect(refused.status == 0 && refused.end == "error: certificate verify failed: hostname mismatch (wrong.test)")

        let unknownCA = try Rig(baseURL: "https://127.0.0.1:\(port)/v1")
        defer { unknownCA.close() }
        let untrusted = try unknownCA.exchange(Self.post(body))
        #expect(untrusted.hasPrefix("HTTP/1.1 502 ") && untrusted.contains("certificate verify failed: unable to get local issuer certificate"))
    }
}
