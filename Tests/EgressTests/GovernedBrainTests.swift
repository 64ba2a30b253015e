import Audit
import Crypto
import Foundation
import Gateway
import Merkle
import Policy
import Testing

/// The Brain's session counters with a real audit log: requests, reserved and charged tokens.
@Suite struct GovernedBrainTests {
    struct Fixture {
        let dir: String
        let log: AuditLog
        let brain: GovernedBrain

        init(_ section: String?) throws {
            dir = try makeTemporaryDirectory()
            log = try AuditLog(path: dir + "/audit.db", options: AuditLog.Options(keyPath: dir + "/audit.key"))
            let text = "version: 1\nagent: thinker\n" + (section ?? "")
            let policy = try AgentPolicy.parse(text, format: .yaml, file: "brain.yaml")
            brain = GovernedBrain(session: GovernedSession(agent: "thinker", policy: policy, log: log, resolver: LexicalPaths()))
        }

        func events() throws -> [AuditEvent] { try AuditReader.records(path: dir + "/audit.db").map(\.event) }

        func close() {
            try? log.close()
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    static let digest = MerkleHash(bytes: Array(SHA256.hash(data: Array("{}".utf8))))!

    static func section(perCall: Int? = nil, perSession: Int? = nil, requests: Int? = nil) -> String {
        var text = "brain:\n  base_url: http://127.0.0.1:9/v1\n  models: [\"gpt-*\"]\n"
        if let perCall { text += "  max_tokens_per_call: \(perCall)\n" }
        if let perSession { text += "  max_tokens_per_session: \(perSession)\n" }
        if let requests { text += "  max_requests: \(requests)\n" }
        return text
    }

    func charge(_ brain: GovernedBrain, _ admission: GovernedBrain.Admission, prompt: UInt64, completion: UInt64) throws {
        let call = BrainCall(requestID: admission.id, model: admission.model, status: 200, promptTokens: prompt, completionTokens: completion,
                             usage: .reported, requestSHA256: Self.digest, responseSHA256: Self.digest, bytesSent: 2, bytesReceived: 2,
                             durationMilliseconds: 1, end: "complete")
        try brain.end(admission, call, status: 200, received: 2, sha256: Self.digest)
    }

    func refusal(_ body: () throws -> Void) -> Policy.Decision? {
        do { try body() } catch {
            if case .denied(let decision)? = error as? GatewayError { return decision }
            Issue.record("not a denial: \(error)")
        }
        return nil
    }

    @Test func aCallWithoutATokenCapIsGivenThePerCallCapAndLoggedBeforeAndAfter() throws {
        let fixture = try Fixture(Self.section(perCall: 100))
        defer { fixture.close() }
        let admission = try fixture.brain.admit(model: "gpt-4o", maxTokens: nil, stream: true, bodySHA256: Self.digest)
        #expect(admission.completionCap == 100)
        #expect(admission.addCap)
        try charge(fixture.brain, admission, prompt: 7, completion: 3)
        #expect(fixture.brain.tokensUsed == 10)
        let events = try fixture.events()
        #expect(events.map(\.kind) == ["tool-request", "decision", "result-digest", "brain-call"])
        guard case .toolRequest(let request) = events[0], case .decision(let decision) = events[1] else { return }
        #expect(request.tool == "brain")
        #expect(String(decoding: request.arguments, as: UTF8.self)
            == "model=gpt-4o\nmax_tokens=none\nstream=true\nbody_sha256=\(Self.digest.hex)\n")
        #expect(decision.verdict == .allow && decision.rule == "brain")
    }

    @Test func aModelOutsideTheListAndACapOverThePerCallLimitAreDenied() throws {
        let fixture = try Fixture(Self.section(perCall: 100))
        defer { fixture.close() }
        let model = refusal { _ = try fixture.brain.admit(model: "claude-3", maxTokens: nil, stream: false, bodySHA256: Self.digest) }
        #expect(model?.rule.id == "brain.models")
        let tokens = refusal { _ = try fixture.brain.admit(model: "gpt-4o", maxTokens: 101, stream: false, bodySHA256: Self.digest) }
        #expect(tokens?.rule.id == "brain.max_tokens_per_call")
        let allowed = try fixture.brain.admit(model: "gpt-4o", maxTokens: 50, stream: false, bodySHA256: Self.digest)
        #expect(allowed.completionCap == 50 && !allowed.addCap)
    }

    @Test func maxRequestsCountsAllowedCallsOnly() throws {
        let fixture = try Fixture(Self.section(requests: 2))
        defer { fixture.close() }
        _ = refusal { _ = try fixture.brain.admit(model: "nope", maxTokens: nil, stream: false, bodySHA256: Self.digest) }
        for _ in 0..<2 {
            let admission = try fixture.brain.admit(model: "gpt-4o", maxTokens: nil, stream: false, bodySHA256: Self.digest)
            #expect(admission.completionCap == nil && !admission.addCap)
            try charge(fixture.brain, admission, prompt: 1, completion: 1)
        }
        let third = refusal { _ = try fixture.brain.admit(model: "gpt-4o", maxTokens: nil, stream: false, bodySHA256: Self.digest) }
        #expect(third?.rule.id == "brain.max_requests")
        #expect(third?.description.contains("2 requests made, at most 2 per session") == true)
    }

    @Test func sessionTokensAreReservedWhileACallRunsAndChargedWhenItEnds() throws {
        let fixture = try Fixture(Self.section(perCall: 60, perSession: 100))
        defer { fixture.close() }
        let first = try fixture.brain.admit(model: "gpt-4o", maxTokens: nil, stream: false, bodySHA256: Self.digest)
        #expect(first.completionCap == 60)
        // 40 left while the first holds 60: the second is given 40, a third nothing.
        let second = try fixture.brain.admit(model: "gpt-4o", maxTokens: nil, stream: false, bodySHA256: Self.digest)
        #expect(second.completionCap == 40)
        let third = refusal { _ = try fixture.brain.admit(model: "gpt-4o", maxTokens: nil, stream: false, bodySHA256: Self.digest) }
        #expect(third?.rule.id == "brain.max_tokens_per_session")
        try charge(fixture.brain, first, prompt: 10, completion: 5)
        try charge(fixture.brain, second, prompt: 10, completion: 5)
        #expect(fixture.brain.tokensUsed == 30)
        // 70 left: 60 asked for fits (and is held), then 20 asked for is refused, not rewritten.
        let fits = try fixture.brain.admit(model: "gpt-4o", maxTokens: 60, stream: false, bodySHA256: Self.digest)
        #expect(fits.completionCap == 60 && !fits.addCap)
        let greedy = refusal { _ = try fixture.brain.admit(model: "gpt-4o", maxTokens: 20, stream: false, bodySHA256: Self.digest) }
        #expect(greedy?.rule.id == "brain.max_tokens_per_session")
        #expect(greedy?.description.contains("20 tokens asked for, 10 left of the session's 100") == true)
        let fixture2 = try Fixture(Self.section(perSession: 100))
        defer { fixture2.close() }
        let big = try fixture2.brain.admit(model: "gpt-4o", maxTokens: nil, stream: false, bodySHA256: Self.digest)
        #expect(big.completionCap == 100)
        try charge(fixture2.brain, big, prompt: 80, completion: 0)
        let over = refusal { _ = try fixture2.brain.admit(model: "gpt-4o", maxTokens: 30, stream: false, bodySHA256: Self.digest) }
        #expect(over?.rule.id == "brain.max_tokens_per_session")
        #expect(over?.description.contains("30 tokens asked for, 20 left of the session's 100") == true)
        let small = try fixture2.brain.admit(model: "gpt-4o", maxTokens: nil, stream: false, bodySHA256: Self.digest)
        #expect(small.completionCap == 20 && small.addCap)
    }

    @Test func noBrainSectionRefusesEveryCallAndLogsIt() throws {
        let fixture = try Fixture(nil)
        defer { fixture.close() }
        let refused = refusal { _ = try fixture.brain.admit(model: "gpt-4o", maxTokens: nil, stream: false, bodySHA256: Self.digest) }
        #expect(refused?.description == "deny default: the policy allows no Brain calls")
        #expect(try fixture.events().map(\.kind) == ["tool-request", "decision"])
    }
}
