import APIServer
import Dispatch
import FoundationEssentials
import MCP
import POSIX
import Synchronization

/// The MCP server (MCP 2025-11-25) over `SandboxTools`, on either transport: standard input and
/// output (`momin mcp`), or Streamable HTTP at /mcp under `momin serve` (stateless: one JSON
/// answer per POST, no session, no server-sent stream).
public enum MCPEndpoints {
    /// What the server calls itself in its initialize answer.
    public static let serverName = "momin"
    public static let serverVersion = "0.1.0"

    /// A server whose tools are `tools`. A tool call blocks while the guest works, so each runs
    /// on a thread of its own: the concurrency pool (one thread per core) never waits on a guest.
    static func server(_ tools: SandboxTools) async -> Server {
        let server = Server(name: serverName, version: serverVersion,
                            instructions: "Each sandbox is a microVM under a policy; every call is judged by that policy and written to a signed audit log.",
                            capabilities: .init(tools: .init(listChanged: false)))
        await server.withMethodHandler(ListTools.self) { _ in ListTools.Result(tools: SandboxTools.tools) }
        await server.withMethodHandler(CallTool.self) { parameters in
            await onThread { tools.call(parameters.name, parameters.arguments) }
        }
        return server
    }

    static func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            do {
                try POSIXThread.detach(name: "mcp-call") { continuation.resume(returning: work()) }
            } catch {
                continuation.resume(returning: work())  // no thread to be had: here, then
            }
        }
    }

    /// Serves MCP on standard input and output until the client closes its end.
    public static func serveStandardIO(_ tools: SandboxTools) async throws {
        let server = await server(tools)
        try await server.start(transport: StdioTransport())
        await server.waitUntilCompleted()
    }

    /// `blocking` for a throwing body: what it threw, as text, or nil.
    public static func blockingThrowing(_ body: @escaping @Sendable () async throws -> Void) -> String? {
        blocking { () async -> String? in
            do { try await body() } catch { return "\(error)" }
            return nil
        }
    }

    /// Runs `body` on the concurrency pool and waits here, on a thread of our own, for its end.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        let result = Mutex<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let value = await body()
            result.withLock { $0 = value }
            done.signal()
        }
        done.wait()
        return result.withLock { $0! }
    }
}

/// MCP's Streamable HTTP transport at /mcp (MCP 2025-11-25, "Transports"), mounted in `momin
/// serve`: every POST is answered by a server made for that caller alone, so a tool call runs as
/// the caller the API server admitted (peer credentials or a bearer token). Origin, and over TCP
/// Host, must be loopback names (`LoopbackOnly`).
public struct MCPHTTPService: MountedService {
    public let sandboxes: Sandboxes

    public init(sandboxes: Sandboxes) {
        self.sandboxes = sandboxes
    }

    public func respond(to request: MountedRequest, caller: Caller) -> MountedResponse {
        var mcpCaller = caller
        mcpCaller.via += " (MCP)"
        let tools = SandboxTools(sandboxes: sandboxes, caller: mcpCaller)
        let overTCP = caller.tokenName != nil
        var fields: [String: String] = [:]
        for (name, value) in request.fields { fields[name] = fields[name].map { $0 + ", " + value } ?? value }
        let http = HTTPRequest(method: request.method, headers: fields, body: request.body.isEmpty ? nil : Data(request.body), path: request.path)
        let response = MCPEndpoints.blocking { () async -> HTTPResponse in
            let server = await MCPEndpoints.server(tools)
            let transport = StatelessHTTPServerTransport(validationPipeline: StandardValidationPipeline(validators: [
                LoopbackOnly(checkHost: overTCP),
                AcceptHeaderValidator(mode: .jsonOnly),
                ContentTypeValidator(),
                ProtocolVersionValidator(),
            ]))
            do { try await server.start(transport: transport) } catch {
                return .error(statusCode: 500, .internalError("the MCP server did not start: \(error)"))
            }
            let response = await transport.handleRequest(http)
            await server.stop()
            return response
        }
        let body = response.bodyData.map { Array($0) } ?? []
        return MountedResponse(status: response.statusCode, fields: response.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, body: body)
    }
}

/// MCP's rule against DNS rebinding (MCP 2025-11-25, "Transports", Streamable HTTP, security
/// warning): a request whose Origin is not a loopback origin is refused 403, and over TCP one
/// whose Host is not a loopback name 421. Over the Unix socket no browser can reach the server,
/// and clients write any Host there, so only Origin is checked.
struct LoopbackOnly: HTTPRequestValidator {
    var checkHost: Bool

    static let names = ["localhost", "127.0.0.1", "[::1]"]

    /// `NAME` or `NAME:PORT`, NAME a loopback name.
    static func isLoopback(_ authority: Substring) -> Bool {
        let authority = authority.lowercased()
        return names.contains { name in
            guard authority.hasPrefix(name) else { return false }
            let rest = authority.dropFirst(name.count)
            return rest.isEmpty || (rest.first == ":" && rest.count > 1 && rest.dropFirst().allSatisfy { $0.isASCII && $0.isNumber })
        }
    }

    func validate(_ request: HTTPRequest, context: HTTPValidationContext) -> HTTPResponse? {
        if checkHost, let host = request.header("Host"), !Self.isLoopback(Substring(host)) {
            return .error(statusCode: 421, .invalidRequest("Misdirected Request: Host \(host) is not a loopback name"))
        }
        if let origin = request.header("Origin") {
            let authority = origin.hasPrefix("http://") ? origin.dropFirst(7) : origin.hasPrefix("https://") ? origin.dropFirst(8) : nil
            guard let authority, Self.isLoopback(authority) else {
                return .error(statusCode: 403, .invalidRequest("Forbidden: Origin \(origin) is not a loopback origin"))
            }
        }
        return nil
    }
}
