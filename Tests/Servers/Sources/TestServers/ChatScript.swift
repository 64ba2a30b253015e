/// What the scripted Chat Completions server answers, turn by turn: the file `--script` names.
///
/// A JSON object (or just the `turns` array):
///
///     {
///       "models": ["momin-test"],
///       "turns": [
///         { "expect": { "model": "momin-test", "last_role": "user", "tool_names": ["exec"] },
///           "tool_calls": [ { "id": "call_1", "name": "exec", "arguments": "{\"argv\":[\"ls\"]}" } ],
///           "usage": { "prompt_tokens": 12, "completion_tokens": 7 } },
///         { "expect": { "last_role": "tool", "tool_call_id": "call_1", "last_content_contains": "README" },
///           "content": "There is a README.",
///           "usage": { "prompt_tokens": 30, "completion_tokens": 5 } }
///       ]
///     }
///
/// `models`: what `GET /v1/models` lists (default `["momin-test"]`). Each request to
/// `/v1/chat/completions` takes the next turn, in order; past the last, the answer is 400
/// `script_exhausted`. A turn has:
/// - `content` (string) and/or `tool_calls` (list of `id`, `name`, `arguments`: a string, or
///   any JSON value, which is sent as its compact text), or `error` instead;
/// - `usage`: `prompt_tokens`, `completion_tokens` (default 0; total is their sum);
/// - `finish_reason` (default `tool_calls` when there are tool calls, else `stop`);
/// - `chunks`: how many content deltas a stream splits `content` into (default 3);
/// - `delay_ms`: wait before answering (at most 600000);
/// - `error`: `{ "status": 429, "message": "...", "type": "...", "code": "..." }`, answered
///   as an OpenAI error object with that HTTP status;
/// - `expect`: checks on the request, all of which must hold, else the answer is 400
///   `expectation_failed` naming the first that failed (the turn is used up either way):
///   `model` (equals), `message_count` (equals), `last_role`, `last_content_contains`,
///   `tool_call_id` (of the last message), `system_contains` (some system or developer
///   message), `any_content_contains` (some message), `stream` (true or false),
///   `max_tokens` (max_tokens or max_completion_tokens equals), `tool_names` (each is a
///   function in `tools`).
/// Unknown keys are refused when the script loads, so a typo is not a check that never runs.
public struct ChatScript: Sendable {
    public var models: [String]
    public var turns: [Turn]

    public struct ToolCall: Sendable, Equatable {
        public var id: String
        public var name: String
        public var arguments: String
    }

    public struct ScriptedError: Sendable, Equatable {
        public var status: Int
        public var message: String
        public var type: String
        public var code: String?
    }

    public struct Turn: Sendable {
        public var expectations: [Expectation] = []
        public var content: String?
        public var toolCalls: [ToolCall] = []
        public var finishReason: String?
        public var promptTokens: Int64 = 0
        public var completionTokens: Int64 = 0
        public var chunks = 3
        public var delayMilliseconds = 0
        public var error: ScriptedError?
    }

    static let maxDelayMilliseconds = 600_000

    /// Reads a script; a message naming the first thing wrong, as `turns[1].usage: ...`.
    public static func load(_ json: JSON) throws(UsageError) -> ChatScript {
        var script = ChatScript(models: ["momin-test"], turns: [])
        let turns: [JSON]
        switch json {
        case let .array(items):
            turns = items
        case .object:
            try onlyKeys(json, ["models", "turns"], at: "script")
            guard let items = json["turns"]?.array else { throw UsageError("script: \"turns\" must be an array") }
            turns = items
            if let models = json["models"] {
                guard let names = models.array?.compactMap(\.string), names.count == models.array?.count, !names.isEmpty else {
                    throw UsageError("script: \"models\" must be a non-empty array of strings")
                }
                script.models = names
            }
        default:
            throw UsageError("script: expected an object with \"turns\", or an array of turns")
        }
        for (i, turn) in turns.enumerated() {
            script.turns.append(try loadTurn(turn, at: "turns[\(i)]"))
        }
        return script
    }

    static func loadTurn(_ json: JSON, at place: String) throws(UsageError) -> Turn {
        try onlyKeys(json, ["expect", "content", "tool_calls", "finish_reason", "usage", "chunks", "delay_ms", "error"], at: place)
        var turn = Turn()
        if let content = json["content"] {
            guard let text = content.string else { throw UsageError("\(place).content: expected a string") }
            turn.content = text
        }
        if let calls = json["tool_calls"] {
            guard let items = calls.array else { throw UsageError("\(place).tool_calls: expected an array") }
            for (i, item) in items.enumerated() {
                let at = "\(place).tool_calls[\(i)]"
                try onlyKeys(item, ["id", "name", "arguments"], at: at)
                guard let id = item["id"]?.string, let name = item["name"]?.string else {
                    throw UsageError("\(at): needs \"id\" and \"name\" strings")
                }
                let arguments = item["arguments"].map { $0.string ?? $0.text } ?? "{}"
                turn.toolCalls.append(ToolCall(id: id, name: name, arguments: arguments))
            }
        }
        if let error = json["error"] {
            try onlyKeys(error, ["status", "message", "type", "code"], at: "\(place).error")
            guard let status = error["status"]?.int, (400...599).contains(status), let message = error["message"]?.string else {
                throw UsageError("\(place).error: needs \"status\" (400 to 599) and \"message\"")
            }
            turn.error = ScriptedError(status: Int(status), message: message, type: error["type"]?.string ?? "api_error",
                                       code: error["code"]?.string)
        }
        guard turn.content != nil || !turn.toolCalls.isEmpty || turn.error != nil else {
            throw UsageError("\(place): needs \"content\", \"tool_calls\" or \"error\"")
        }
        if let reason = json["finish_reason"] {
            guard let text = reason.string else { throw UsageError("\(place).finish_reason: expected a string") }
            turn.finishReason = text
        }
        if let usage = json["usage"] {
            try onlyKeys(usage, ["prompt_tokens", "completion_tokens"], at: "\(place).usage")
            turn.promptTokens = try count(usage["prompt_tokens"], at: "\(place).usage.prompt_tokens") ?? 0
            turn.completionTokens = try count(usage["completion_tokens"], at: "\(place).usage.completion_tokens") ?? 0
        }
        if let chunks = try count(json["chunks"], at: "\(place).chunks") {
            guard chunks >= 1, chunks <= 10_000 else { throw UsageError("\(place).chunks: 1 to 10000") }
            turn.chunks = Int(chunks)
        }
        if let delay = try count(json["delay_ms"], at: "\(place).delay_ms") {
            guard delay <= maxDelayMilliseconds else { throw UsageError("\(place).delay_ms: at most \(maxDelayMilliseconds)") }
            turn.delayMilliseconds = Int(delay)
        }
        if let expect = json["expect"] {
            guard case let .object(members) = expect else { throw UsageError("\(place).expect: expected an object") }
            for (key, value) in members {
                turn.expectations.append(try Expectation(key: key, value: value, at: "\(place).expect.\(key)"))
            }
        }
        return turn
    }

    static func onlyKeys(_ json: JSON, _ keys: Set<String>, at place: String) throws(UsageError) {
        guard case let .object(members) = json else { throw UsageError("\(place): expected an object") }
        if let unknown = members.first(where: { !keys.contains($0.0) }) {
            throw UsageError("\(place): unknown key \"\(unknown.0)\" (known: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    static func count(_ json: JSON?, at place: String) throws(UsageError) -> Int64? {
        guard let json else { return nil }
        guard let value = json.int, value >= 0 else { throw UsageError("\(place): expected a non-negative integer") }
        return value
    }
}

/// One `expect` check on a Chat Completions request.
public enum Expectation: Sendable, Equatable {
    case model(String)
    case messageCount(Int64)
    case lastRole(String)
    case lastContentContains(String)
    case toolCallID(String)
    case systemContains(String)
    case anyContentContains(String)
    case stream(Bool)
    case maxTokens(Int64)
    case toolNames([String])

    init(key: String, value: JSON, at place: String) throws(UsageError) {
        func text() throws(UsageError) -> String {
            guard let s = value.string else { throw UsageError("\(place): expected a string") }
            return s
        }
        switch key {
        case "model": self = .model(try text())
        case "last_role": self = .lastRole(try text())
        case "last_content_contains": self = .lastContentContains(try text())
        case "tool_call_id": self = .toolCallID(try text())
        case "system_contains": self = .systemContains(try text())
        case "any_content_contains": self = .anyContentContains(try text())
        case "message_count", "max_tokens":
            guard let n = value.int else { throw UsageError("\(place): expected an integer") }
            self = key == "message_count" ? .messageCount(n) : .maxTokens(n)
        case "stream":
            guard let b = value.bool else { throw UsageError("\(place): expected true or false") }
            self = .stream(b)
        case "tool_names":
            guard let names = value.array?.compactMap(\.string), names.count == value.array?.count else {
                throw UsageError("\(place): expected an array of strings")
            }
            self = .toolNames(names)
        default:
            throw UsageError("\(place): unknown check (known: model, message_count, last_role, last_content_contains, "
                + "tool_call_id, system_contains, any_content_contains, stream, max_tokens, tool_names)")
        }
    }

    /// The script's name for the check, which the error's `param` carries.
    public var key: String {
        switch self {
        case .model: return "model"
        case .messageCount: return "message_count"
        case .lastRole: return "last_role"
        case .lastContentContains: return "last_content_contains"
        case .toolCallID: return "tool_call_id"
        case .systemContains: return "system_contains"
        case .anyContentContains: return "any_content_contains"
        case .stream: return "stream"
        case .maxTokens: return "max_tokens"
        case .toolNames: return "tool_names"
        }
    }

    /// nil when the request passes; else what differed, as `KEY: expected X, got Y`.
    public func failure(_ request: ChatRequest) -> String? {
        func quoted(_ s: String?) -> String { s.map { JSON.string($0).text } ?? "nothing" }
        let last = request.messages.last
        switch self {
        case let .model(want):
            return request.model == want ? nil : "model: expected \(quoted(want)), got \(quoted(request.model))"
        case let .messageCount(want):
            return Int64(request.messages.count) == want ? nil : "message_count: expected \(want), got \(request.messages.count)"
        case let .lastRole(want):
            return last?.role == want ? nil : "last_role: expected \(quoted(want)), got \(quoted(last?.role))"
        case let .lastContentContains(want):
            return last?.text.contains(want) == true ? nil
                : "last_content_contains: expected the last message's content to contain \(quoted(want)), got \(quoted(last.map { String($0.text.prefix(200)) }))"
        case let .toolCallID(want):
            return last?.toolCallID == want ? nil : "tool_call_id: expected \(quoted(want)), got \(quoted(last?.toolCallID))"
        case let .systemContains(want):
            return request.messages.contains { ($0.role == "system" || $0.role == "developer") && $0.text.contains(want) } ? nil
                : "system_contains: no system or developer message contains \(quoted(want))"
        case let .anyContentContains(want):
            return request.messages.contains { $0.text.contains(want) } ? nil : "any_content_contains: no message contains \(quoted(want))"
        case let .stream(want):
            return request.stream == want ? nil : "stream: expected \(want), got \(request.stream)"
        case let .maxTokens(want):
            let got = request.maxCompletionTokens ?? request.maxTokens
            return got == want ? nil : "max_tokens: expected \(want), got \(got.map(String.init) ?? "nothing")"
        case let .toolNames(want):
            let missing = want.filter { !request.toolNames.contains($0) }
            return missing.isEmpty ? nil
                : "tool_names: expected tools \(missing.joined(separator: ", ")), got [\(request.toolNames.joined(separator: ", "))]"
        }
    }
}

/// The parts of a Chat Completions request (OpenAI API reference, "Create chat completion")
/// the server reads and checks.
public struct ChatRequest: Sendable {
    public struct Message: Sendable {
        public var role: String
        /// `content` as text: the string, or the `text` of each text part joined.
        public var text: String
        public var toolCallID: String?
    }

    public var model: String
    public var messages: [Message]
    public var stream: Bool
    public var includeUsage: Bool
    public var maxTokens: Int64?
    public var maxCompletionTokens: Int64?
    public var toolNames: [String]

    /// A 400's message and its `param`.
    public struct Invalid: Error {
        public let message: String
        public let param: String?
    }

    public init(_ json: JSON) throws(Invalid) {
        guard case .object = json else { throw Invalid(message: "the body must be a JSON object", param: nil) }
        guard let model = json["model"]?.string else { throw Invalid(message: "you must provide a model parameter", param: "model") }
        guard let items = json["messages"]?.array, !items.isEmpty else {
            throw Invalid(message: "'messages' must be a non-empty array", param: "messages")
        }
        self.model = model
        messages = []
        for (i, item) in items.enumerated() {
            guard let role = item["role"]?.string else { throw Invalid(message: "messages[\(i)] needs a 'role' string", param: "messages[\(i)].role") }
            let text: String
            switch item["content"] {
            case nil, .null?: text = ""
            case let .string(s)?: text = s
            case let .array(parts)?: text = parts.compactMap { $0["text"]?.string }.joined()
            default: throw Invalid(message: "messages[\(i)].content must be a string, an array of parts or null", param: "messages[\(i)].content")
            }
            messages.append(Message(role: role, text: text, toolCallID: item["tool_call_id"]?.string))
        }
        func flag(_ key: String, _ value: JSON?) throws(Invalid) -> Bool {
            guard let value, !value.isNull else { return false }
            guard let b = value.bool else { throw Invalid(message: "'\(key)' must be a boolean", param: key) }
            return b
        }
        func limit(_ key: String) throws(Invalid) -> Int64? {
            guard let value = json[key], !value.isNull else { return nil }
            guard let n = value.int, n >= 0 else { throw Invalid(message: "'\(key)' must be a non-negative integer", param: key) }
            return n
        }
        stream = try flag("stream", json["stream"])
        includeUsage = try flag("stream_options.include_usage", json["stream_options"]?["include_usage"])
        maxTokens = try limit("max_tokens")
        maxCompletionTokens = try limit("max_completion_tokens")
        toolNames = (json["tools"]?.array ?? []).compactMap { $0["function"]?["name"]?.string }
    }
}
