import Policy
import Testing

/// Documents built to exhaust the parser, as a guest can send one (`hands spawn --policy`) and a
/// user can name one (`momin policy check`): each must end in a clean error naming the problem,
/// never in a crash, and before the composer recurses into it.
@Suite struct HostileDocumentTests {
    static let depth = 100_000

    static func refusal(_ text: String, _ format: PolicyFormat) -> String? {
        do {
            _ = try AgentPolicy.parse(text, format: format, file: "deep.\(format == .json ? "json" : "yaml")")
            return nil
        } catch {
            return error.description
        }
    }

    @Test func deepFlowSequencesAreRefusedBeforeComposing() throws {
        let text = String(repeating: "[", count: Self.depth) + String(repeating: "]", count: Self.depth)
        let refusal = try #require(Self.refusal(text, .yaml))
        #expect(refusal.contains("nested too deeply"))
    }

    @Test func deepFlowMappingsAreRefusedBeforeComposing() throws {
        let text = String(repeating: "{a: ", count: Self.depth) + "1" + String(repeating: "}", count: Self.depth)
        let refusal = try #require(Self.refusal(text, .yaml))
        #expect(refusal.contains("nested too deeply"))
    }

    @Test func deepBlockSequencesOnOneLineAreRefused() throws {
        // "- - - - x": each dash opens a sequence inside the last, without a new line.
        let text = String(repeating: "- ", count: Self.depth) + "x\n"
        let refusal = try #require(Self.refusal(text, .yaml))
        #expect(refusal.contains("nested too deeply"))
    }

    @Test func deepBlockMappingsAreRefused() throws {
        var text = ""
        for level in 0..<2_000 { text += String(repeating: " ", count: level) + "k:\n" }
        let refusal = try #require(Self.refusal(text, .yaml))
        #expect(refusal.contains("nested too deeply"))
    }

    @Test func nestingJustWithinTheLimitIsStillAPolicyError() throws {
        // 63 levels of lists under a known key: parsed, then refused by the builder.
        let text = "version: 1\nagent: a\ntools: " + String(repeating: "[", count: 62) + String(repeating: "]", count: 62) + "\n"
        let refusal = try #require(Self.refusal(text, .yaml))
        #expect(!refusal.contains("nested too deeply"))
    }

    @Test func deepJSONIsRefusedToo() throws {
        let text = String(repeating: "[", count: Self.depth) + String(repeating: "]", count: Self.depth)
        let refusal = try #require(Self.refusal(text, .json))
        #expect(refusal.contains("nested too deeply"))
    }

    @Test func tooManyNodesAreRefusedBeforeComposing() throws {
        // 200,000 scalars in one flow sequence: under the size limit of a file, over the node budget.
        let text = "[" + Array(repeating: "1", count: 200_000).joined(separator: ",") + "]"
        let refusal = try #require(Self.refusal(text, .yaml))
        #expect(refusal.contains("too many nodes"))
    }
}
