/// A service the API server answers at one path with whole requests and whole answers, after
/// admitting the caller as it does for every other route (the MCP endpoint at /mcp). It lives in
/// another module, which depends on this one.
public protocol MountedService: Sendable {
    /// The answer to one request made by `caller`. It may block while a sandbox works.
    func respond(to request: MountedRequest, caller: Caller) -> MountedResponse
}

public struct MountedRequest: Sendable {
    public var method: String
    public var path: String
    /// The header fields, in order, as the client sent them.
    public var fields: [(name: String, value: String)]
    public var body: [UInt8]
}

public struct MountedResponse: Sendable {
    public var status: Int
    public var fields: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, fields: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        self.fields = fields
        self.body = body
    }
}
