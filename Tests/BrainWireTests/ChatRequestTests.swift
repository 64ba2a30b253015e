import BrainWire
import Testing

@Suite struct ChatRequestTests {
    func parse(_ text: String) -> Result<ChatRequest, BrainWireError> { ChatRequest.parse(Array(text.utf8)[...]) }

    func rewrite(_ text: String, cap: Int?) throws -> String {
        let request = try parse(text).get()
        let out = request.rewritten(Array(text.utf8)[...], maxTokensWhenAbsent: cap)
        // Whatever the rewrite adds, the result is a request again, of the same model.
        let again = try ChatRequest.parse(out[...]).get()
        #expect(again.model == request.model && again.stream == request.stream)
        return String(decoding: out, as: UTF8.self)
    }

    @Test func readsModelTokensAndStream() throws {
        let request = try parse(#"{"model":"gpt-4o","messages":[],"max_tokens":100,"max_completion_tokens":250,"stream":true}"#).get()
        #expect(request == ChatRequest(model: "gpt-4o", maxTokens: 250, stream: true))
        #expect(try parse(#"{"model":"m","max_tokens":null,"stream":null}"#).get() == ChatRequest(model: "m", maxTokens: nil, stream: false))
        #expect(try parse(#"{"max_tokens":7,"model":"m"}"#).get().maxTokens == 7)
        let longest = String(repeating: "m", count: ChatRequest.maximumModelBytes)
        #expect(try parse(#"{"model":""# + longest + #""}"#).get().model == longest)
        #expect(throws: BrainWireError.self) { try self.parse(#"{"model":"m"# + longest + #""}"#).get() }
    }

    @Test(arguments: [
        (#"{"model":"m","max_tokens":"abc"}"#, #"max_tokens must be a positive integer, found "abc""#),
        (#"{"model":"m","max_tokens":0}"#, "max_tokens must be a positive integer, found 0"),
        (#"{"model":"m","max_completion_tokens":-5}"#, "max_completion_tokens must be a positive integer, found -5"),
        (#"{"model":"m","max_tokens":1.5}"#, "max_tokens must be a positive integer, found 1.5"),
        (#"{"model":"m","max_tokens":1e3}"#, "max_tokens must be a positive integer, found 1e3"),
        (#"{"model":"m","max_tokens":99999999999999999999}"#, "max_tokens must be a positive integer, found 99999999999999999999"),
        (#"{"model":"m","stream":"yes"}"#, #"stream must be true or false, found "yes""#),
        (#"{"model":""}"#, #"model must be a non-empty string, found """#),
        (#"{"model":42}"#, "model must be a non-empty string, found 42"),
        (#"{"messages":[]}"#, "model is missing"),
        (#"{"model":"gpt\n4"}"#, #"model must not contain control characters, found "gpt\n4""#),
        (#"{"model":"a","model":"b"}"#, #""model" appears more than once in the request body"#),
        (#"{"model":"a","max_tokens":1,"max_tokens":100000}"#, #""max_tokens" appears more than once in the request body"#),
        (#"{"model":"a","stre\u0061m":false,"stream":true}"#, #""stream" appears more than once in the request body"#),
        (#"{"model":"a","stream":true,"stream_options":{"include_usage":false,"include_usage":true}}"#,
         #""stream_options.include_usage" appears more than once in the request body"#),
    ])
    func fieldErrorsNameTheField(text: String, message: String) {
        guard case .failure(let error) = parse(text) else {
            Issue.record("accepted: \(text)")
            return
        }
        #expect(error.status == 400)
        #expect(error.description == message)
    }

    @Test func bodiesThatAreNotObjectsAreRefused() {
        for text in ["[]", "\"m\"", "{\"model\":\"m\",}", "{\"model\":\"m\"} x", ""] {
            guard case .failure(let error) = parse(text) else {
                Issue.record("accepted: \(text)")
                continue
            }
            #expect(error.status == 400 && error.description.hasPrefix("the request body is not a JSON object"), "\(error)")
        }
        let huge = [UInt8](repeating: 0x20, count: ChatRequest.maximumBodyBytes + 1)
        #expect((try? ChatRequest.parse(huge[...]).get()) == nil)
        if case .failure(let error) = ChatRequest.parse(huge[...]) { #expect(error.status == 413) }
    }

    @Test func capIsAddedOnlyWhenNoTokenFieldIsPresent() throws {
        #expect(try rewrite(#"{"model":"m","messages":[ {"role":"user"} ]}"#, cap: 512)
            == #"{"model":"m","messages":[ {"role":"user"} ],"max_completion_tokens":512}"#)
        #expect(try rewrite(#"{"model":"m" , "max_tokens" : 9 }"#, cap: 512) == #"{"model":"m" , "max_tokens" : 9 }"#)
        #expect(try rewrite(#"{"model":"m","max_completion_tokens":9}"#, cap: 512) == #"{"model":"m","max_completion_tokens":9}"#)
        #expect(try rewrite(#"{"model":"m"}"#, cap: nil) == #"{"model":"m"}"#)
        // A null field is replaced in place, never added twice.
        #expect(try rewrite(#"{"model":"m","max_completion_tokens":null,"x":1}"#, cap: 64) == #"{"model":"m","max_completion_tokens":64,"x":1}"#)
        #expect(try rewrite(#"{"max_tokens":null,"model":"m"}"#, cap: 64) == #"{"max_tokens":null,"model":"m","max_completion_tokens":64}"#)
        #expect(try parse(try rewrite(#"{"model":"m"}"#, cap: 64)).get().maxTokens == 64)
    }

    @Test func streamingAsksForUsage() throws {
        #expect(try rewrite(#"{"model":"m","stream":true}"#, cap: nil) == #"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#)
        #expect(try rewrite(#"{"model":"m","stream":true}"#, cap: 10)
            == #"{"model":"m","stream":true,"max_completion_tokens":10,"stream_options":{"include_usage":true}}"#)
        #expect(try rewrite(#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"x":[1]},"n":1}"#, cap: nil)
            == #"{"model":"m","stream":true,"stream_options":{"include_usage":true,"x":[1]},"n":1}"#)
        #expect(try rewrite(#"{"model":"m","stream":true,"stream_options":{ "x" : 2 }}"#, cap: nil)
            == #"{"model":"m","stream":true,"stream_options":{ "x" : 2,"include_usage":true }}"#)
        #expect(try rewrite(#"{"model":"m","stream":true,"stream_options":{}}"#, cap: nil)
            == #"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#)
        #expect(try rewrite(#"{"model":"m","stream":true,"stream_options":null}"#, cap: nil)
            == #"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#)
        #expect(try rewrite(#"{"stream_options":"no","model":"m","stream":true}"#, cap: nil)
            == #"{"stream_options":{"include_usage":true},"model":"m","stream":true}"#)
        // Not streaming: stream_options is the guest's business.
        #expect(try rewrite(#"{"model":"m","stream":false,"stream_options":"x"}"#, cap: nil) == #"{"model":"m","stream":false,"stream_options":"x"}"#)
    }

    @Test func emptyObjectGetsNoLeadingComma() throws {
        // Only model is required, so the emptiest object the rewrite meets is an inner one.
        let text = #"{"model":"m","stream":true,"stream_options":{  }}"#
        #expect(try rewrite(text, cap: nil) == #"{"model":"m","stream":true,"stream_options":{"include_usage":true  }}"#)
    }

    /// The guest's other members come through byte for byte: the rewrite only inserts.
    @Test func unrelatedMembersAreByteIdentical() throws {
        let text = """
            {"messages":[{"role":"user","content":"caf\\u00e9 \u{e9} \\ud83d\\ude00"}], "model" : "gpt-4o-mini",
              "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
              "temperature": 0.70, "stream": true, "user":"\\/x"}
            """
        let body = Array(text.utf8)
        let out = try parse(text).get().rewritten(body[...], maxTokensWhenAbsent: 300)
        let before = try JSONScan.object(body[...]).get()
        let after = try JSONScan.object(out[...]).get()
        #expect(after.members.map(\.key) == before.members.map(\.key) + ["max_completion_tokens", "stream_options"])
        for (old, new) in zip(before.members, after.members) {
            #expect(body[old.keyRange.lowerBound..<old.valueRange.upperBound].elementsEqual(out[new.keyRange.lowerBound..<new.valueRange.upperBound]))
        }
        #expect(out.starts(with: body.dropLast()))
    }
}
