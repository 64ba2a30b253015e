import Glibc
import Synchronization

/// `momin-test-server openai`: a scripted OpenAI-compatible server (OpenAI API reference,
/// "Chat Completions" and "Models"). `POST /v1/chat/completions` answers the script's next
/// turn (ChatScript), as a `chat.completion` object or, with `stream: true`, as Server-Sent
/// Events of `chat.completion.chunk` objects ending in `data: [DONE]`. `GET /v1/models` lists
/// the script's models. With a key, every request needs `Authorization: Bearer KEY` (401
/// `invalid_api_key` otherwise). With a log, each request appends one JSON line.
public final class ChatServer: HTTPHandler {
    let script: ChatScript
    let key: String?
    let log: LineLog?
    /// The next turn and the request count, taken together with the log write, so the log's
    /// order is the order turns were used.
    let state = Mutex((nextTurn: 0, requests: 0))

    /// A request body past this is refused (413).
    static let bodyLimit = 8 << 20

    public init(script: ChatScript, key: String?, log: LineLog?) {
        self.script = script
        self.key = key
        self.log = log
    }

    /// OpenAI's error object: `{"error": {"message", "type", "param", "code"}}`.
    static func errorJSON(_ message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil) -> JSON {
        .object([("error", .object([
            ("message", .string(message)), ("type", .string(type)),
            ("param", param.map(JSON.string) ?? .null), ("code", code.map(JSON.string) ?? .null),
        ]))])
    }

    public func errorBody(status: Int, message: String) -> (contentType: String, body: [UInt8]) {
        var body: [UInt8] = []
        ChatServer.errorJSON(message, type: status >= 500 ? "server_error" : "invalid_request_error").write(into: &body)
        return ("application/json", body + [0x0A])
    }

    public func handle(_ request: Request, _ responder: Responder) throws {
        let head = request.head
        var entry: [(String, JSON)] = [
            ("method", .string(head.method)), ("path", .string(head.path)),
            ("authorization", .bool(head.field("Authorization") != nil)),
        ]
        // RFC 9110 §11.6.2 Authorization, §11.1: the scheme is case-insensitive.
        if let key {
            let given = head.field("Authorization")
            let parts = given?.split(separator: " ", maxSplits: 1).map(String.init) ?? []
            guard parts.count == 2, parts[0].lowercased() == "bearer", parts[1] == key else {
                let message = given == nil ? "You didn't provide an API key." : "Incorrect API key provided."
                return try answer(401, ChatServer.errorJSON(message, code: "invalid_api_key"), entry, responder,
                                  fields: [("WWW-Authenticate", "Bearer")])
            }
        }
        switch (head.method, head.path) {
        case ("GET", "/v1/models"):
            let models = script.models.map { name -> JSON in
                .object([("id", .string(name)), ("object", .string("model")), ("created", .int(0)), ("owned_by", .string("momin-test"))])
            }
            try answer(200, .object([("object", .string("list")), ("data", .array(models))]), entry, responder)
        case ("POST", "/v1/chat/completions"):
            try completion(request, &entry, responder)
        case (_, "/v1/models"), (_, "/v1/chat/completions"):
            try answer(405, ChatServer.errorJSON("\(head.method) is not allowed on \(head.path)."), entry, responder)
        default:
            try answer(404, ChatServer.errorJSON("Unknown request URL: \(head.method) \(head.path).", code: "unknown_url"), entry, responder)
        }
    }

    /// Logs the request, then answers `json` with `status`.
    func answer(_ status: Int, _ json: JSON, _ entry: [(String, JSON)], _ responder: Responder,
                fields: [(name: String, value: String)] = []) throws {
        record(entry + [("status", .int(Int64(status)))])
        try responder.send(status: status, json: json, fields: fields)
    }

    func record(_ entry: [(String, JSON)]) {
        log?.append(JSON.object(entry).text)
    }

    func completion(_ request: Request, _ entry: inout [(String, JSON)], _ responder: Responder) throws {
        let body = try request.body(limit: ChatServer.bodyLimit)
        let chat: ChatRequest
        do {
            chat = try ChatRequest(try JSON.parse(body))
        } catch let error as JSONError {
            return try answer(400, ChatServer.errorJSON("We could not parse the JSON body of your request: \(error)"), entry, responder)
        } catch let invalid as ChatRequest.Invalid {
            return try answer(400, ChatServer.errorJSON(invalid.message, param: invalid.param), entry, responder)
        }
        entry += [
            ("model", .string(chat.model)), ("messages", .int(Int64(chat.messages.count))),
            ("max_tokens", chat.maxTokens.map(JSON.int) ?? .null),
            ("max_completion_tokens", chat.maxCompletionTokens.map(JSON.int) ?? .null),
            ("stream", .bool(chat.stream)), ("include_usage", .bool(chat.includeUsage)),
            ("tools", .int(Int64(chat.toolNames.count))),
        ]
        // Take the turn, and log, in one step.
        let (number, turnIndex) = state.withLock { state -> (Int, Int?) in
            state.requests += 1
            guard state.nextTurn < script.turns.count else { return (state.requests, nil) }
            state.nextTurn += 1
            return (state.requests, state.nextTurn - 1)
        }
        guard let turnIndex else {
            return try answer(400, ChatServer.errorJSON("The script has no turn left for this request (it has \(script.turns.count)).",
                                                        code: "script_exhausted"), entry + [("turn", .null)], responder)
        }
        let turn = script.turns[turnIndex]
        entry.append(("turn", .int(Int64(turnIndex))))
        if let failure = turn.expectations.lazy.compactMap({ $0.failure(chat) }).first {
            let key = String(failure.prefix { $0 != ":" })
            printError("momin-test-server openai: turn \(turnIndex): expectation failed: \(failure)")
            return try answer(400, ChatServer.errorJSON("Expectation failed for turn \(turnIndex): \(failure)", param: key,
                                                        code: "expectation_failed"),
                              entry + [("expect_failed", .string(failure))], responder)
        }
        if turn.delayMilliseconds > 0 { sleep(milliseconds: turn.delayMilliseconds) }
        if let error = turn.error {
            return try answer(error.status, ChatServer.errorJSON(error.message, type: error.type, code: error.code), entry, responder)
        }
        let reply = Reply(id: "chatcmpl-momin-\(number)", created: Int64(time(nil)), model: chat.model, turn: turn)
        if chat.stream {
            record(entry + [("status", .int(200))])
            try responder.startChunked(status: 200, contentType: "text/event-stream", fields: [("Cache-Control", "no-cache")])
            for event in reply.events(includeUsage: chat.includeUsage) {
                try responder.write(Array("data: \(event)\n\n".utf8))
            }
            try responder.finish()
        } else {
            try answer(200, reply.completion, entry, responder)
        }
    }
}

/// One scripted answer in the shapes of the OpenAI API reference: "The chat completion
/// object" and "The chat completion chunk object".
struct Reply {
    let id: String
    let created: Int64
    let model: String
    let turn: ChatScript.Turn

    var finishReason: String { turn.finishReason ?? (turn.toolCalls.isEmpty ? "stop" : "tool_calls") }

    var usage: JSON {
        .object([
            ("prompt_tokens", .int(turn.promptTokens)), ("completion_tokens", .int(turn.completionTokens)),
            ("total_tokens", .int(turn.promptTokens + turn.completionTokens)),
        ])
    }

    var completion: JSON {
        var message: [(String, JSON)] = [("role", .string("assistant")), ("content", turn.content.map(JSON.string) ?? .null)]
        if !turn.toolCalls.isEmpty {
            message.append(("tool_calls", .array(turn.toolCalls.map { call in
                .object([
                    ("id", .string(call.id)), ("type", .string("function")),
                    ("function", .object([("name", .string(call.name)), ("arguments", .string(call.arguments))])),
                ])
            })))
        }
        message.append(("refusal", .null))
        return .object([
            ("id", .string(id)), ("object", .string("chat.completion")), ("created", .int(created)), ("model", .string(model)),
            ("choices", .array([.object([
                ("index", .int(0)), ("message", .object(message)), ("logprobs", .null), ("finish_reason", .string(finishReason)),
            ])])),
            ("usage", usage), ("system_fingerprint", .null),
        ])
    }

    /// The `data:` payloads of a stream: the role, the content in `turn.chunks` deltas, each
    /// tool call (id and name first, then its arguments in two pieces), the finish reason; with
    /// `include_usage`, every chunk carries `usage: null` and a last chunk with no choices
    /// carries the usage; then `[DONE]`.
    func events(includeUsage: Bool) -> [String] {
        func chunk(_ delta: [(String, JSON)], finish: String? = nil) -> String {
            var members: [(String, JSON)] = [
                ("id", .string(id)), ("object", .string("chat.completion.chunk")), ("created", .int(created)),
                ("model", .string(model)), ("system_fingerprint", .null),
                ("choices", .array([.object([
                    ("index", .int(0)), ("delta", .object(delta)), ("logprobs", .null),
                    ("finish_reason", finish.map(JSON.string) ?? .null),
                ])])),
            ]
            if includeUsage { members.append(("usage", .null)) }
            return JSON.object(members).text
        }
        var events = [chunk([("role", .string("assistant")), ("content", .string("")), ("refusal", .null)])]
        if let content = turn.content {
            for piece in Reply.split(content, into: turn.chunks) { events.append(chunk([("content", .string(piece))])) }
        }
        for (index, call) in turn.toolCalls.enumerated() {
            events.append(chunk([("tool_calls", .array([.object([
                ("index", .int(Int64(index))), ("id", .string(call.id)), ("type", .string("function")),
                ("function", .object([("name", .string(call.name)), ("arguments", .string(""))])),
            ])]))]))
            for piece in Reply.split(call.arguments, into: 2) {
                events.append(chunk([("tool_calls", .array([.object([
                    ("index", .int(Int64(index))), ("function", .object([("arguments", .string(piece))])),
                ])]))]))
            }
        }
        events.append(chunk([], finish: finishReason))
        if includeUsage {
            events.append(JSON.object([
                ("id", .string(id)), ("object", .string("chat.completion.chunk")), ("created", .int(created)),
                ("model", .string(model)), ("system_fingerprint", .null), ("choices", .array([])), ("usage", usage),
            ]).text)
        }
        events.append("[DONE]")
        return events
    }

    /// `text` in `parts` pieces of nearly equal length, split between characters; fewer when
    /// the text is shorter; none when it is empty.
    static func split(_ text: String, into parts: Int) -> [String] {
        let characters = Array(text)
        guard !characters.isEmpty else { return [] }
        let count = min(parts, characters.count)
        return (0..<count).map { i in
            String(characters[(i * characters.count / count)..<((i + 1) * characters.count / count)])
        }
    }
}
