import Policy
import Testing

/// `brain`: the model endpoint, the models and the token caps of Brain calls.
@Suite struct BrainTests {
    static let yaml = """
        version: 1
        agent: web
        brain:
          base_url: https://api.anthropic.com/v1/
          models: ["claude-*", gpt-4o-mini]
          max_tokens_per_call: 8192
          max_tokens_per_session: 1000000
          max_requests: 200
          log_content: true
        """

    static let policy: AgentPolicy = try! parse(yaml)

    static func judge(_ model: String, _ tokens: Int, _ policy: AgentPolicy = policy) -> Decision {
        policy.evaluate(.brain(model: model, maxTokens: tokens), resolver: LexicalResolver())
    }

    @Test func everyBrainFieldIsRead() throws {
        let brain = try #require(Self.policy.brain)
        #expect(brain.baseURL.description == "https://api.anthropic.com/v1")
        #expect(brain.baseURL.host == .name("api.anthropic.com") && brain.baseURL.port == 443 && brain.baseURL.path == "/v1")
        #expect(brain.models.map(\.pattern) == ["claude-*", "gpt-4o-mini"])
        #expect(brain.maxTokensPerCall == 8192 && brain.maxTokensPerSession == 1_000_000 && brain.maxRequests == 200 && brain.logContent)
        #expect(brain.rule == RuleRef("brain", line: 3) && brain.rule.line == 3 && brain.maxRequestsRule.line == 8)
        let json = try parse(#"{"version": 1, "agent": "web", "brain": {"base_url": "https://api.anthropic.com/v1", "models": ["claude-*", "gpt-4o-mini"], "max_tokens_per_call": 8192, "max_tokens_per_session": 1000000, "max_requests": 200, "log_content": true}}"#, .json)
        #expect(json == Self.policy)
        #expect(try parse("version: 1\nagent: a\n").brain == nil)
    }

    @Test func baseURLsAreParsedStrictly() {
        let good: [(String, String)] = [
            ("http://127.0.0.1:11434", "http://127.0.0.1:11434"), ("https://[::1]:8443/api", "https://[::1]:8443/api"),
            ("https://llm.internal:443/", "https://llm.internal"), ("http://llm.internal:80/v1/chat", "http://llm.internal/v1/chat"),
        ]
        for (text, canonical) in good {
            #expect((try? BaseURL.parse(text).get())?.description == canonical, "\(text)")
        }
        let bad: [(String, String)] = [
            ("ftp://x.com", "must start with https:// or http://"), ("https://user:key@x.com", "no user name or password"),
            ("https://x.com/v1?key=1", "no query or fragment"), ("https://x.com:0", "port"), ("https://x.com:65536", "port"),
            ("https://X.com", "must be written as \"x.com\""), ("https://0177.0.0.1", "resolvers read"), ("https://x.com/a/../b", "normal form"),
            ("https://[::1", "unclosed"), ("https://[x.com]", "not an IPv6 address"), ("https://x .com", "spaces"), ("https://", "is empty"),
        ]
        for (text, message) in bad {
            guard case .failure(let problem) = BaseURL.parse(text) else { Issue.record("\(text) accepted"); continue }
            #expect(problem.description.contains(message), "\(text): \(problem)")
        }
    }

    @Test func badBrainSectionsNameTheirField() {
        let cases: [(String, String, String)] = [
            ("models: [x]", "brain.base_url", "missing"),
            ("base_url: https://x.com\n  models: []", "brain.models", "allows no model"),
            ("base_url: https://x.com", "brain.models", "missing"),
            ("base_url: https://x.com/?a\n  models: [x]", "brain.base_url", "no query"),
            ("base_url: https://x.com\n  models: [x]\n  max_tokens_per_call: 0", "brain.max_tokens_per_call", "at least 1"),
            ("base_url: https://x.com\n  models: [x]\n  max_tokens_per_call: 10\n  max_tokens_per_session: 5", "brain.max_tokens_per_call", "more than max_tokens_per_session"),
            ("base_url: https://x.com\n  models: [x]\n  temperature: 1", "brain.temperature", "unknown key"),
        ]
        expectFieldErrors("version: 1\nagent: a\nbrain:\n  ", cases)
    }

    @Test func brainCallsAreJudgedByModelAndTokens() throws {
        let brain = try #require(Self.policy.brain)
        #expect(Self.judge("claude-sonnet-4", 4096) == .allow(brain.rule))
        #expect(Self.judge("gpt-4o-mini", 8192).isAllowed)
        #expect(Self.judge("gpt-4o", 10) == .deny(brain.modelsRule, .modelNotAllowed("gpt-4o")))
        #expect(Self.judge("claude-x", 8193) == .deny(brain.maxTokensPerCallRule, .tokensOverCallLimit(requested: 8193, limit: 8192)))
        #expect(Self.judge("claude-x", 8193).reason == "8193 tokens asked for, at most 8192 per call allowed")
        #expect(Self.judge("claude-x", 0).why == .malformedCall("max tokens 0 is not positive"))
        #expect(!Self.judge("claude x", 10).isAllowed && !Self.judge("", 10).isAllowed)
        #expect(Self.judge("claude-x", 1, try parse("version: 1\nagent: a\n")) == .deny(.defaultDeny, .nothingAllowed("Brain calls")))
    }
}
