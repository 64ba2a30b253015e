import Testing
@testable import TestServers

@Suite struct ChatScriptTests {
    let request = try! ChatRequest(try! JSON.parse(#"""
        {"model":"m","max_completion_tokens":5,"stream":true,"tools":[{"type":"function","function":{"name":"exec"}}],
         "messages":[{"role":"system","content":"be brief"},{"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"out: ok"}]}]}
        """#))

    @Test func expectationsPassAndFail() throws {
        let script = try ChatScript.load(try JSON.parse(#"""
            [{"content":"x","expect":{"model":"m","message_count":2,"last_role":"tool","tool_call_id":"c1",
              "last_content_contains":"ok","system_contains":"brief","stream":true,"max_tokens":5,"tool_names":["exec"]}},
             {"content":"y","expect":{"last_role":"user"}}]
            """#))
        #expect(script.turns[0].expectations.count == 9)
        #expect(script.turns[0].expectations.allSatisfy { $0.failure(request) == nil })
        #expect(script.turns[1].expectations[0].failure(request) == #"last_role: expected "user", got "tool""#)
    }

    @Test(arguments: [
        #"{"turns":[{"usage":{"prompt_tokens":1}}]}"#, #"{"turns":[{"content":"x","expect":{"modle":"m"}}]}"#,
        #"{"turns":[{"content":1}]}"#, #"{"turn":[]}"#, #"[{"error":{"status":200,"message":"x"}}]"#,
        #"[{"tool_calls":[{"name":"f"}]}]"#,
    ])
    func refusesBadScripts(_ text: String) {
        #expect(throws: UsageError.self) { try ChatScript.load(try JSON.parse(text)) }
    }

    @Test func streamEvents() throws {
        let script = try ChatScript.load(try JSON.parse(#"[{"content":"abcdef","chunks":4,"tool_calls":[{"id":"c","name":"f","arguments":"{}"}]}]"#))
        let events = Reply(id: "i", created: 0, model: "m", turn: script.turns[0]).events(includeUsage: true)
        // role, 4 content deltas, the call, its arguments in 2 pieces, finish, usage, [DONE]
        #expect(events.count == 11)
        #expect(events.last == "[DONE]")
        #expect(try JSON.parse(events[9])["choices"]?.array?.isEmpty == true)
        #expect(try JSON.parse(events[8])["choices"]?.array?.first?["finish_reason"] == .string("tool_calls"))
        #expect(Reply.split("héllo", into: 10) == ["h", "é", "l", "l", "o"])
    }
}
