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

/// Record and replay of a session's exchanges with the world (docs/replay.md): the relays keep
/// what went out and came back in an exchange store; a replay answers from it with nothing
/// listening, and the agent sees the same bytes and the session the same observations.
@Suite struct SessionTapeTests {
    typealias Server = EgressRelayTests.Server

    /// Calls a session observed, in order.
    final class Observed: Sendable {
        let calls = Mutex<[CallObservation]>([])
        func attach(_ session: GovernedSession) { session.observe = { [self] call in calls.withLock { $0.append(call) } } }
        var all: [CallObservation] { calls.withLock { $0 } }
    }

    static func store() throws -> ExchangeStore { try ExchangeStore(directory: try makeTemporaryDirectory() + "/session.rec.exchanges") }

    @Test func aStreamedModelCallReplaysByteForByteWithNoProvider() throws {
        let reply = BrainRelayTests.chunkedStream([
            #"{"choices":[{"index":0,"delta":{"content":"recorded"}}]}"#,
            #"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1}}"#, "[DONE]",
        ])
        let server = try Server(reply: reply)
        let port = server.port
        let store = try Self.store()
        let recording = try BrainRelayTests.Rig(port: port, brain: "  max_tokens_per_session: 50", tape: .recording(store))
        defer { recording.close() }
        let recorded = Observed()
        recorded.attach(recording.session)
        let body = #"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"what is it?"}]}"#
        let first = try recording.exchange(BrainRelayTests.post(body))
        #expect(first.contains("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"recorded\"}}]}\n\n"))
        server.stop()
        let calls = recorded.all
        #expect(calls.count == 1 && calls.first?.tool == "brain" && calls.first?.exchange != nil)
        guard let exchange = calls.first?.exchange else { return }
        // What the provider sent is kept whole; the request as forwarded, without the key.
        #expect(try store.read(exchange.response).get() == reply)
        let keptRequest = String(decoding: try store.read(exchange.request).get(), as: UTF8.self)
        #expect(keptRequest.hasPrefix(#"{"model":"gpt-4o","stream":true"#) && !keptRequest.contains("sk-host-secret"))

        // The replay: the provider's port is closed; the answer comes from the store.
        let replaying = try BrainRelayTests.Rig(port: port, brain: "  max_tokens_per_session: 50", key: nil,
                                                tape: .replaying(RecordedExchanges(store: store, calls: calls)))
        defer { replaying.close() }
        let replayed = Observed()
        replayed.attach(replaying.session)
        #expect(try replaying.exchange(BrainRelayTests.post(body)) == first)
        #expect(replayed.all == calls)
        guard case .brainCall(let call)? = try replaying.events().last else { Issue.record("no brain-call record"); return }
        #expect(call.promptTokens == 9 && call.completionTokens == 1 && call.usage == .reported && call.end == "complete")
    }

    @Test func aRequestTheRecordingDoesNotHaveIsAnswered502AndKeptForTheReport() throws {
        let store = try Self.store()
        let reply = BrainRelayTests.response(#"{"choices":[{"index":0,"message":{"role":"assistant","content":"a"}}]}"#)
        let server = try Server(reply: reply)
        let recording = try BrainRelayTests.Rig(port: server.port, tape: .recording(store))
        defer { recording.close() }
        let recorded = Observed()
        recorded.attach(recording.session)
        _ = try recording.exchange(BrainRelayTests.post(#"{"model":"gpt-4o","messages":[{"role":"user","content":"one"}]}"#))
        // The same request twice gets the two answers in order; a third has none.
        _ = try recording.exchange(BrainRelayTests.post(#"{"model":"gpt-4o","messages":[{"role":"user","content":"one"}]}"#))
        server.stop()
        let tape = RecordedExchanges(store: store, calls: recorded.all)
        let replaying = try BrainRelayTests.Rig(port: server.port, key: nil, tape: .replaying(tape))
        defer { replaying.close() }
        for _ in 0..<2 {
            #expect(try replaying.exchange(BrainRelayTests.post(#"{"model":"gpt-4o","messages":[{"role":"user","content":"one"}]}"#))
                .hasPrefix("HTTP/1.1 200 OK\r\n"))
        }
        let again = try replaying.exchange(BrainRelayTests.post(#"{"model":"gpt-4o","messages":[{"role":"user","content":"one"}]}"#))
        #expect(again.hasPrefix("HTTP/1.1 502 ") && again.contains("is not in the recording"))
        let diverged = try replaying.exchange(BrainRelayTests.post(#"{"model":"gpt-4o","messages":[{"role":"user","content":"two"}]}"#))
        #expect(diverged.hasPrefix("HTTP/1.1 502 ") && diverged.contains("momin replay: this brain request"))
        #expect(tape.firstDiverged(tool: "brain").map { String(decoding: $0, as: UTF8.self) }?.contains("\"one\"") == true)
    }

    @Test func aPlainHTTPRequestReplaysFromTheStoreAndATunnelIsRefusedBothTimes() throws {
        let reply = Array("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nrecorded".utf8)
        let server = try Server(reply: reply)
        let port = server.port
        let store = try Self.store()
        let recording = try EgressRelayTests.Rig(policy: EgressRelayTests.policy(port: port), tape: .recording(store))
        defer { recording.close() }
        let recorded = Observed()
        recorded.attach(recording.session)
        let get = Array("GET http://127.0.0.1:\(port)/ok/page HTTP/1.1\r\n\r\n".utf8)
        let first = try recording.exchange(get)
        #expect(first == String(decoding: reply, as: UTF8.self))
        let tunnel = Array("CONNECT 127.0.0.1:\(port) HTTP/1.1\r\n\r\n".utf8)
        let refused = try recording.exchange(tunnel)
        #expect(refused.hasPrefix("HTTP/1.1 403 Forbidden\r\n") && refused.contains("X-Momin-Decision: deny record"))
        #expect(server.accepted.load(ordering: .relaxed) == 1)
        server.stop()
        let calls = recorded.all
        #expect(calls.map(\.tool) == ["egress-http", "egress-connect"])
        #expect(calls.first?.exchange != nil && calls.last?.allowed == false && calls.last?.rule == "record")

        let replaying = try EgressRelayTests.Rig(policy: EgressRelayTests.policy(port: port),
                                                 tape: .replaying(RecordedExchanges(store: store, calls: calls)))
        defer { replaying.close() }
        let replayed = Observed()
        replayed.attach(replaying.session)
        #expect(try replaying.exchange(get) == first)
        #expect(try replaying.exchange(tunnel) == refused)
        #expect(replayed.all == calls)
        // A request the recording does not have reaches nobody: the replay's far end says so.
        let other = try replaying.exchange(Array("GET http://127.0.0.1:\(port)/ok/other HTTP/1.1\r\n\r\n".utf8))
        #expect(other.hasPrefix("HTTP/1.1 502 ") && other.contains("is not in the recording"))
    }

    @Test func theStoreKeepsBytesByDigestAndRefusesWhatChangedOrIsTooLarge() throws {
        let store = try Self.store()
        let digest = try #require(store.keep(Array("kept".utf8)))
        #expect(digest == MerkleHash(bytes: Array(SHA256.hash(data: Array("kept".utf8))))!)
        #expect(try store.read(digest).get() == Array("kept".utf8))
        // Changed on disk: refused, not served.
        try Data("tampered".utf8).write(to: URL(fileURLWithPath: store.path(of: digest)))
        #expect(throws: (any Error).self) { try store.read(digest).get() }
        // One byte over the limit of one direction: nothing is kept, and no partial file is left.
        let writer = try #require(store.writer())
        writer.append([UInt8](repeating: 7, count: ExchangeStore.exchangeLimit))
        writer.append([7])
        #expect(writer.finish() == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory) == [digest.hex])
    }

    /// A replay opens a store without making one, and a record that kept no exchange needs none.
    @Test func aReplaysStoreIsOpenedNotMade() throws {
        let missing = try makeTemporaryDirectory() + "/old.rec.exchanges"
        #expect(throws: SystemError.self) { try ExchangeStore(directory: missing, create: false) }
        #expect(access(missing, F_OK) != 0)
        let none = RecordedExchanges(store: nil, calls: [])
        guard case .failure(let miss) = none.answer(tool: "brain", request: [1]) else { Issue.record("answered without a store"); return }
        #expect(miss.description.contains("is not in the recording"))
    }

    @Test func theRecordedResolverAnswersWithTheRecordingsAddressesOnly() throws {
        let call = CallObservation(tool: "egress-http", arguments: Array("host=Example.COM\nport=80\nscheme=http\nmethod=GET\ntarget=/\nresolved=93.184.216.34,2606:2800::1\n".utf8),
                                   allowed: true, rule: "network.egress[0]")
        let resolver = RecordedResolver(calls: [call])
        let v6 = try IPAddress.parse("2606:2800::1").get()
        #expect(try resolver.addresses(of: "example.com").get() == [.v4(0x5DB8_D822), v6])
        #expect(throws: ResolveFailure.self) { try resolver.addresses(of: "other.example").get() }
    }
}
