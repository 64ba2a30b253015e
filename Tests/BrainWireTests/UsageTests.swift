import BrainWire
import Testing

@Suite struct UsageTests {
    func read(_ text: String) -> Result<ChatResponseView, BrainWireError> { ChatResponseView.read(Array(text.utf8)[...]) }

    /// An OpenAI stream with `include_usage`: content chunks, then one with empty choices and the usage.
    @Test func usageFromARealLookingStream() throws {
        let stream = """
            data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}

            data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}

            data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}

            data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}

            data: [DONE]


            """
        var scanner = EventStreamScanner()
        let events = try scanner.feed(Array(stream.utf8)[...]).get()
        try scanner.finish().get()
        #expect(events.count == 5)
        #expect(ChatResponseView.isDone(events[4].data[...]))
        let views = try events.prefix(4).map { try ChatResponseView.read($0.data[...]).get() }
        #expect(views.map(\.hasContent) == [false, true, false, false])
        #expect(views.map(\.choiceCount) == [1, 1, 1, 0])
        #expect(views.compactMap(\.usage) == [TokenUsage(prompt: 12, completion: 5, total: 17)])
        #expect(views.allSatisfy { $0.model == "gpt-4o-mini-2024-07-18" && $0.error == nil })
    }

    @Test func aWholeResponseAndItsToolCalls() throws {
        let view = try read(#"""
            {"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":null,
             "tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],
             "usage":{"prompt_tokens":30,"completion_tokens":7}}
            """#).get()
        #expect(view.hasContent && view.choiceCount == 1)
        #expect(view.usage == TokenUsage(prompt: 30, completion: 7, total: 37))
        #expect(try read(#"{"choices":[{"message":{"content":"","tool_calls":[]}}]}"#).get().hasContent == false)
        #expect(try read(#"{"choices":[{"delta":{"content":"x"}}]}"#).get().hasContent == true)
        #expect(try read(#"{}"#).get() == ChatResponseView())
    }

    @Test func errorObjectsAreRead() throws {
        #expect(try read(#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#).get().error == "Rate limit reached")
        #expect(try read(#"{"error":"upstream down"}"#).get().error == "upstream down")
        #expect(try read(#"{"error":null}"#).get().error == nil)
    }

    @Test(arguments: [
        #"{"usage":{"prompt_tokens":-1,"completion_tokens":5}}"#,
        #"{"usage":{"prompt_tokens":1.5,"completion_tokens":5}}"#,
        #"{"usage":{"prompt_tokens":"1","completion_tokens":5}}"#,
        #"{"usage":{"completion_tokens":5}}"#,
        #"{"usage":{"prompt_tokens":1,"completion_tokens":5,"total_tokens":-6}}"#,
        #"{"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":1}}"#,
        #"{"usage":{"prompt_tokens":1,"prompt_tokens":100,"completion_tokens":5}}"#,
        #"{"usage":1}"#,
        #"{"usage":{},"usage":null}"#,
        #"{"choices":{}}"#,
        #"{"model":7}"#,
        #"[]"#,
        #"data"#,
    ])
    func badDocumentsAreTheProvidersFault(_ text: String) {
        guard case .failure(let error) = read(text) else {
            Issue.record("accepted: \(text)")
            return
        }
        #expect(error.status == 502, "\(error)")
    }

    @Test func doneIsExact() {
        #expect(ChatResponseView.isDone(Array("[DONE]".utf8)[...]))
        #expect(!ChatResponseView.isDone(Array("[DONE] ".utf8)[...]) && !ChatResponseView.isDone(Array("[done]".utf8)[...]))
    }
}
