/// Tokens a provider says a call took (Chat Completions' `usage` object).
public struct TokenUsage: Equatable, Sendable {
    public var prompt: Int
    public var completion: Int
    public var total: Int

    public init(prompt: Int, completion: Int, total: Int) {
        self.prompt = prompt
        self.completion = completion
        self.total = total
    }
}

/// What the relay reads of one provider document: a whole non-streamed response body, or the
/// data of one streamed event (a `chat.completion.chunk`). Only the members below are looked
/// at; a duplicate of any of them is refused (the guest's reader and ours could take different
/// ones, RFC 8259 §4), as is a member of the wrong kind.
public struct ChatResponseView: Sendable, Equatable {
    /// From the top-level `usage` object; nil when absent or null.
    public var usage: TokenUsage?
    public var model: String?
    /// How many elements `choices` has; 0 without it.
    public var choiceCount: Int
    /// Whether a choice's `delta` or `message` carries a non-empty `content` string or a
    /// non-empty `tool_calls` array: output was produced (used to estimate the tokens of a
    /// stream whose provider never reports usage).
    public var hasContent: Bool
    /// `error.message` when the document is an error object (or `error` when it is a string).
    public var error: String?

    public init(usage: TokenUsage? = nil, model: String? = nil, choiceCount: Int = 0, hasContent: Bool = false, error: String? = nil) {
        self.usage = usage
        self.model = model
        self.choiceCount = choiceCount
        self.hasContent = hasContent
        self.error = error
    }

    /// Whether an event's data is the stream's terminator, `[DONE]`, which is not JSON.
    public static func isDone(_ data: ArraySlice<UInt8>) -> Bool { data.elementsEqual("[DONE]".utf8) }

    /// Reads one JSON document, which must be an object.
    public static func read(_ json: ArraySlice<UInt8>) -> Result<ChatResponseView, BrainWireError> {
        Result { () throws(BrainWireError) in try reading(json) }
    }

    static func reading(_ json: ArraySlice<UInt8>) throws(BrainWireError) -> ChatResponseView {
        let object = try members(json, of: "the response")
        var view = ChatResponseView()
        if let member = try one(object, "usage", in: "the response"), member.kind != .null {
            view.usage = try usage(json[member.valueRange])
        }
        if let member = try one(object, "model", in: "the response"), member.kind != .null {
            guard let model = JSONScan.string(json[member.valueRange]) else { throw .response("the response's model is not a string") }
            view.model = model
        }
        if let member = try one(object, "choices", in: "the response"), member.kind != .null {
            guard member.kind == .array, case .success(let choices) = JSONScan.array(json[member.valueRange]) else {
                throw .response("the response's choices are not an array")
            }
            view.choiceCount = choices.count
            for choice in choices where choice.kind == .object {
                if try produced(json[choice.valueRange]) { view.hasContent = true }
            }
        }
        if let member = try one(object, "error", in: "the response"), member.kind != .null {
            if member.kind == .string {
                view.error = JSONScan.string(json[member.valueRange])
            } else if member.kind == .object {
                let error = try members(json[member.valueRange], of: "the response's error")
                if let message = try one(error, "message", in: "the response's error"), message.kind == .string {
                    view.error = JSONScan.string(json[message.valueRange])
                }
            }
        }
        return view
    }

    /// usage: prompt_tokens and completion_tokens required, total_tokens their sum when absent;
    /// each a non-negative integer.
    static func usage(_ json: ArraySlice<UInt8>) throws(BrainWireError) -> TokenUsage {
        let object = try members(json, of: "usage")
        func count(_ name: String, required: Bool) throws(BrainWireError) -> Int? {
            guard let member = try one(object, name, in: "usage"), member.kind != .null else {
                if required { throw .response("usage.\(name) is missing") }
                return nil
            }
            guard let value = JSONScan.integer(json[member.valueRange]), value >= 0 else {
                throw .response("usage.\(name) must be a non-negative integer, found \(BrainWireError.quote(json[member.valueRange]))")
            }
            return value
        }
        let prompt = try count("prompt_tokens", required: true)!
        let completion = try count("completion_tokens", required: true)!
        if let total = try count("total_tokens", required: false) { return TokenUsage(prompt: prompt, completion: completion, total: total) }
        let (sum, overflow) = prompt.addingReportingOverflow(completion)
        guard !overflow else { throw .response("usage's token counts overflow") }
        return TokenUsage(prompt: prompt, completion: completion, total: sum)
    }

    /// Whether one choice's `delta` or `message` carries output.
    static func produced(_ json: ArraySlice<UInt8>) throws(BrainWireError) -> Bool {
        let choice = try members(json, of: "a choice")
        for name in ["delta", "message"] {
            guard let member = try one(choice, name, in: "a choice"), member.kind == .object else { continue }
            let body = try members(json[member.valueRange], of: "a choice's \(name)")
            if let content = try one(body, "content", in: "a choice's \(name)"), content.kind == .string,
               let text = JSONScan.string(json[content.valueRange]), !text.isEmpty {
                return true
            }
            if let calls = try one(body, "tool_calls", in: "a choice's \(name)"), calls.kind == .array,
               case .success(let elements) = JSONScan.array(json[calls.valueRange]), !elements.isEmpty {
                return true
            }
        }
        return false
    }

    static func members(_ json: ArraySlice<UInt8>, of what: String) throws(BrainWireError) -> JSONObject {
        switch JSONScan.object(json) {
        case .success(let object): return object
        case .failure(let error): throw .response("\(what) is not a JSON object: \(error)")
        }
    }

    static func one(_ object: JSONObject, _ name: String, in what: String) throws(BrainWireError) -> JSONMember? {
        switch object.member(named: name) {
        case .success(let member): return member
        case .failure: throw .response("\"\(name)\" appears more than once in \(what)")
        }
    }
}
