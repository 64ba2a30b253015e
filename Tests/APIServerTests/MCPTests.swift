import APIServer
import Foundation
import MCP
@testable import MominMCP
import POSIX
import Testing

/// The MCP tools without a VM: their schemas, their arguments' checks, and /mcp through a real
/// API server (the tools on real sandboxes run in the rig, sdk/python/tests_vm/test_mcp.py).
@Suite struct MCPTests {
    static let toolNames = ["sandbox_create", "run_command", "fs_read", "fs_write", "fs_list", "sandbox_kill", "sandbox_list"]

    /// Each tool's input schema is complete (a type and a description for every property, the
    /// required ones among them, nothing else allowed) and names exactly what its call decodes.
    @Test func everyToolHasACompleteSchemaMatchingItsArguments() throws {
        #expect(SandboxTools.tools.map(\.name) == Self.toolNames)
        for tool in SandboxTools.tools {
            let schema = try #require(tool.inputSchema.objectValue, "\(tool.name)")
            #expect(schema["type"] == "object")
            #expect(schema["additionalProperties"] == false, "\(tool.name)")
            let properties = try #require(schema["properties"]?.objectValue, "\(tool.name)")
            let required = Set(try #require(schema["required"]?.arrayValue).compactMap(\.stringValue))
            #expect(required.isSubset(of: Set(properties.keys)), "\(tool.name)")
            for (key, property) in properties {
                let fields = try #require(property.objectValue, "\(tool.name).\(key)")
                #expect(fields["type"]?.stringValue != nil && fields["description"]?.stringValue?.isEmpty == false, "\(tool.name).\(key)")
            }
            #expect(Set(properties.keys) == SandboxTools.argumentNames[tool.name], "\(tool.name)")
            #expect(tool.description?.isEmpty == false, "\(tool.name)")
        }
    }

    func text(_ result: CallTool.Result) -> String {
        result.content.compactMap { if case .text(let text, _, _) = $0 { text } else { nil } }.joined()
    }

    /// Bad arguments are tool errors naming what was wrong, found before any sandbox is asked.
    @Test func badArgumentsAreToolErrorsNamingWhatWasWrong() throws {
        let fixture = try APIServerTests.Fixture()
        let tools = SandboxTools(sandboxes: fixture.server.sandboxes, caller: .thisProcess(via: "test"))
        let cases: [(String, [String: Value], String)] = [
            ("fs_read", ["sandbox": "a"], "path: missing"),
            ("fs_read", ["sandbox": "a", "path": "/x", "bogus": 1], "bogus: not an argument"),
            ("fs_read", ["sandbox": "a", "path": "/x", "max_bytes": 0], "max_bytes 0"),
            ("run_command", ["sandbox": "a", "command": "true", "argv": ["true"]], "exactly one of command"),
            ("run_command", ["sandbox": "a"], "exactly one of command"),
            ("run_command", ["sandbox": 7, "command": "true"], "sandbox: expected String"),
            ("fs_write", ["sandbox": "a", "path": "/x", "content": "%%", "encoding": "base64"], "content is not base64"),
            ("fs_write", ["sandbox": "a", "path": "/x", "content": "", "encoding": "latin-1"], "encoding latin-1"),
            ("sandbox_list", ["all": true], "all: sandbox_list takes no arguments"),
            ("sandbox_create", ["policy": "strict"], "this server has no policy directory"),
            ("run_command", ["sandbox": "absent", "command": "true"], "no sandbox named absent"),
            ("fs_list", ["sandbox": "absent", "path": "/"], "no sandbox named absent"),
            ("no_such_tool", [:], "no tool named no_such_tool"),
        ]
        for (name, arguments, expected) in cases {
            let result = tools.call(name, arguments)
            #expect(result.isError == true, "\(name) \(arguments)")
            #expect(text(result).contains(expected), "\(name) \(arguments): \(text(result))")
        }
        let listed = tools.call("sandbox_list", nil)
        #expect(listed.isError != true)
        #expect(text(listed) == "no sandboxes")
    }

    @Test(arguments: [("localhost", true), ("localhost:8700", true), ("127.0.0.1:1", true), ("[::1]:80", true), ("LOCALHOST", true),
                      ("localhost.evil.example", false), ("127.0.0.1:", false), ("127.0.0.1:8o", false), ("10.0.2.15:8700", false),
                      ("evil.example", false), ("", false)])
    func loopbackNames(authority: String, loopback: Bool) {
        #expect(LoopbackOnly.isLoopback(Substring(authority)) == loopback)
    }

    static let accept = "Accept: application/json, text/event-stream\r\n"

    static func rpc(_ json: String, fields: String = accept) -> String {
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\(fields)Content-Length: \(json.utf8.count)\r\nConnection: close\r\n\r\n\(json)"
    }

    /// `fixture.exchange` on a thread of its own, awaited. The server answers MCP on the
    /// concurrency pool, which Swift Testing fills with other suites' blocking tests (two threads
    /// on two cores): a test that waited there would hold one of them, and its answer could wait
    /// for ever. The limit is generous for the same reason.
    static func exchange(_ fixture: APIServerTests.Fixture, _ request: String) async throws -> String {
        nonisolated(unsafe) let fixture = fixture
        return try await withCheckedThrowingContinuation { continuation in
            do throws(SystemError) {
                try POSIXThread.detach(name: "mcp-test") {
                    continuation.resume(with: Result { try fixture.exchange(Array(request.utf8), seconds: 120) })
                }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// /mcp on a real server: initialize, the tool list, a tool call, and the refusals MCP's
    /// transport rules ask for.
    @Test func theMCPEndpointAnswersJSONRPC() async throws {
        let fixture = try APIServerTests.Fixture(mcp: true)
        func exchange(_ request: String) async throws -> String { try await Self.exchange(fixture, request) }
        let initialize = #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}"#
        var answer = try await exchange(Self.rpc(initialize))
        #expect(APIServerTests.statuses(answer) == [200], "\(answer)")
        var result = try #require(try APIServerTests.body(answer)["result"] as? [String: Any], "\(answer)")
        #expect((result["serverInfo"] as? [String: Any])?["name"] as? String == "momin")
        #expect(result["protocolVersion"] as? String == "2025-06-18")
        #expect((result["capabilities"] as? [String: Any])?["tools"] != nil)

        answer = try await exchange(Self.rpc(#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#))
        result = try #require(try APIServerTests.body(answer)["result"] as? [String: Any], "\(answer)")
        let listed = try #require(result["tools"] as? [[String: Any]])
        #expect(listed.compactMap { $0["name"] as? String } == Self.toolNames)

        answer = try await exchange(Self.rpc(#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"fs_read","arguments":{"sandbox":"absent","path":"/etc/hostname"}}}"#))
        result = try #require(try APIServerTests.body(answer)["result"] as? [String: Any], "\(answer)")
        #expect(result["isError"] as? Bool == true)
        #expect(((result["content"] as? [[String: Any]])?.first?["text"] as? String)?.contains("no sandbox named absent") == true, "\(answer)")

        // A notification is taken with 202 and no body.
        answer = try await exchange(Self.rpc(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#))
        #expect(APIServerTests.statuses(answer) == [202], "\(answer)")
        // A browser's page from elsewhere, a client that takes no JSON, a version nobody speaks, a GET.
        answer = try await exchange(Self.rpc(initialize, fields: Self.accept + "Origin: http://evil.example\r\n"))
        #expect(APIServerTests.statuses(answer) == [403], "\(answer)")
        answer = try await exchange(Self.rpc(initialize, fields: Self.accept + "Origin: http://localhost:3000\r\n"))
        #expect(APIServerTests.statuses(answer) == [200], "\(answer)")
        answer = try await exchange(Self.rpc(initialize, fields: "Accept: text/html\r\n"))
        #expect(APIServerTests.statuses(answer) == [406], "\(answer)")
        answer = try await exchange(Self.rpc(#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#, fields: Self.accept + "MCP-Protocol-Version: 1999-01-01\r\n"))
        #expect(APIServerTests.statuses(answer) == [400], "\(answer)")
        answer = try await exchange("GET /mcp HTTP/1.1\r\nHost: localhost\r\n\(Self.accept)Connection: close\r\n\r\n")
        #expect(APIServerTests.statuses(answer) == [405], "\(answer)")
    }

    /// A server without an MCP endpoint has no /mcp.
    @Test func withoutTheEndpointThereIsNoMCP() throws {
        let fixture = try APIServerTests.Fixture()
        let answer = try fixture.exchange(Self.rpc(#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#))
        #expect(APIServerTests.statuses(answer) == [404], "\(answer)")
    }
}
