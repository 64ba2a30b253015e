import APIServer
import FoundationEssentials
import MCP

/// The MCP tools (MCP 2025-11-25, "Tools") over `Sandboxes`, the library `momin serve` and the
/// CLI use: each call is made as `caller`, judged by the sandbox's policy and logged like any
/// other. A failure is a tool result with `isError` (MCP "Error Handling": the model sees it),
/// naming the policy rule when a policy denied the call.
public struct SandboxTools: Sendable {
    public let sandboxes: Sandboxes
    public let caller: Caller

    public init(sandboxes: Sandboxes, caller: Caller) {
        self.sandboxes = sandboxes
        self.caller = caller
    }

    /// The most of each output stream, and of a file, that one tool result carries.
    public static let outputLimit = 1 << 20
    /// The most a file written through fs_write may be, once decoded.
    public static let writeLimit = 8 << 20

    // MARK: Arguments

    struct Create: ToolArguments {
        typealias Keys = CodingKeys
        var name: String?
        var image: String?
        var policy: String?
        var vcpus: Int?
        var memoryMiB: Int?
        var timeoutSeconds: Double?
        var idleTimeoutSeconds: Double?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, image, policy, vcpus
            case memoryMiB = "memory_mib", timeoutSeconds = "timeout_seconds", idleTimeoutSeconds = "idle_timeout_seconds"
        }
    }

    struct Run: ToolArguments {
        typealias Keys = CodingKeys
        var sandbox: String
        var command: String?
        var argv: [String]?
        var stdin: String?
        var env: [String]?
        var cwd: String?
        var timeoutSeconds: Double?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case sandbox, command, argv, stdin, env, cwd
            case timeoutSeconds = "timeout_seconds"
        }
    }

    struct Path: ToolArguments {
        typealias Keys = CodingKeys
        var sandbox: String
        var path: String

        enum CodingKeys: String, CodingKey, CaseIterable { case sandbox, path }
    }

    struct Read: ToolArguments {
        typealias Keys = CodingKeys
        var sandbox: String
        var path: String
        var maxBytes: Int?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case sandbox, path
            case maxBytes = "max_bytes"
        }
    }

    struct Write: ToolArguments {
        typealias Keys = CodingKeys
        var sandbox: String
        var path: String
        var content: String
        var encoding: String?

        enum CodingKeys: String, CodingKey, CaseIterable { case sandbox, path, content, encoding }
    }

    struct Named: ToolArguments {
        typealias Keys = CodingKeys
        var sandbox: String

        enum CodingKeys: String, CodingKey, CaseIterable { case sandbox }
    }

    // MARK: The tools

    /// Every tool, with its complete input schema (JSON Schema 2020-12, no other keys allowed).
    public static let tools: [Tool] = [
        Tool(name: "sandbox_create",
             description: "Start a new sandbox: a microVM with its own kernel, governed by a policy. Returns its name, which the other tools take as `sandbox`.",
             inputSchema: object([
                 "name": ["type": "string", "description": "A name for it (letters, digits, - and _); a random one if left out."],
                 "image": ["type": "string", "description": "A root file system image registered on the server (momin image ls); the default image if left out."],
                 "policy": ["type": "string", "description": "A policy registered on the server (momin serve --policies DIR); every call in the sandbox is judged by it."],
                 "vcpus": ["type": "integer", "minimum": 1, "maximum": 64, "description": "Virtual CPUs (default 1)."],
                 "memory_mib": ["type": "integer", "minimum": 64, "description": "Memory in MiB (default 512)."],
                 "timeout_seconds": ["type": "number", "exclusiveMinimum": 0, "description": "Stop the sandbox this long after it starts, whatever it is doing."],
                 "idle_timeout_seconds": ["type": "number", "exclusiveMinimum": 0, "description": "Stop it after this long without a call or a running command (default 1800)."],
             ], required: []),
             annotations: .init(title: "Create a sandbox", readOnlyHint: false, destructiveHint: false, openWorldHint: false)),
        Tool(name: "run_command",
             description: "Run a command in a sandbox and wait for it: give `command` (run by /bin/sh -c) or `argv`. Returns its exit status, stdout and stderr (each cut at 1 MiB). A command the policy denies is an error naming the rule.",
             inputSchema: object([
                 "sandbox": sandboxProperty,
                 "command": ["type": "string", "minLength": 1, "description": "A shell command line, run as /bin/sh -c COMMAND."],
                 "argv": ["type": "array", "items": ["type": "string"], "minItems": 1, "description": "The program and its arguments, run without a shell."],
                 "stdin": ["type": "string", "description": "Text given to the command as its standard input."],
                 "env": ["type": "array", "items": ["type": "string", "pattern": "^[^=]+="], "description": "Environment variables, NAME=VALUE each."],
                 "cwd": ["type": "string", "pattern": "^/", "description": "The working directory, an absolute path (default /)."],
                 "timeout_seconds": ["type": "number", "exclusiveMinimum": 0, "description": "Kill the command after this long."],
             ], required: ["sandbox"]),
             annotations: .init(title: "Run a command", readOnlyHint: false, destructiveHint: true, openWorldHint: false)),
        Tool(name: "fs_read",
             description: "Read a file in a sandbox. Text comes back as it is; bytes that are not UTF-8 come back base64-encoded. At most max_bytes (default and limit 1 MiB) are returned.",
             inputSchema: object([
                 "sandbox": sandboxProperty,
                 "path": pathProperty,
                 "max_bytes": ["type": "integer", "minimum": 1, "maximum": .int(outputLimit), "description": "Return at most this many bytes (default 1 MiB)."],
             ], required: ["sandbox", "path"]),
             annotations: .init(title: "Read a file", readOnlyHint: true, openWorldHint: false)),
        Tool(name: "fs_write",
             description: "Write a file in a sandbox, replacing it if it exists. `content` is text, or base64 with encoding \"base64\"; at most 8 MiB.",
             inputSchema: object([
                 "sandbox": sandboxProperty,
                 "path": pathProperty,
                 "content": ["type": "string", "description": "The file's contents."],
                 "encoding": ["type": "string", "enum": ["utf-8", "base64"], "description": "How `content` is written (default utf-8)."],
             ], required: ["sandbox", "path", "content"]),
             annotations: .init(title: "Write a file", readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false)),
        Tool(name: "fs_list",
             description: "List a directory in a sandbox: each entry's name and type.",
             inputSchema: object(["sandbox": sandboxProperty, "path": pathProperty], required: ["sandbox", "path"]),
             annotations: .init(title: "List a directory", readOnlyHint: true, openWorldHint: false)),
        Tool(name: "sandbox_kill",
             description: "Stop a sandbox and every sub-agent under it. Its audit log stays.",
             inputSchema: object(["sandbox": sandboxProperty], required: ["sandbox"]),
             annotations: .init(title: "Stop a sandbox", readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false)),
        Tool(name: "sandbox_list",
             description: "The sandboxes this caller may use, with their state, size and sub-agents.",
             inputSchema: object([:], required: []),
             annotations: .init(title: "List sandboxes", readOnlyHint: true, openWorldHint: false)),
    ]

    /// The arguments each tool's call decodes: its schema's properties must be these.
    static let argumentNames: [String: Set<String>] = [
        "sandbox_create": Create.names, "run_command": Run.names, "fs_read": Read.names, "fs_write": Write.names,
        "fs_list": Path.names, "sandbox_kill": Named.names, "sandbox_list": [],
    ]

    static let sandboxProperty: Value = ["type": "string", "minLength": 1, "description": "The sandbox's name, as sandbox_create or sandbox_list gave it."]
    static let pathProperty: Value = ["type": "string", "pattern": "^/", "description": "An absolute path in the sandbox."]

    static func object(_ properties: [String: Value], required: [String]) -> Value {
        [
            "type": "object",
            "properties": .object(properties),
            "required": .array(required.map { .string($0) }),
            "additionalProperties": false,
        ]
    }

    /// Calls tool `name`. Blocks while the sandbox works: call it off the concurrency pool.
    public func call(_ name: String, _ arguments: [String: Value]?) -> CallTool.Result {
        do throws(Problem) {
            switch name {
            case "sandbox_create": return try create(decode(arguments, as: Create.self))
            case "run_command": return try run(decode(arguments, as: Run.self))
            case "fs_read": return try read(decode(arguments, as: Read.self))
            case "fs_write": return try write(decode(arguments, as: Write.self))
            case "fs_list":
                let target: Path = try decode(arguments, as: Path.self)
                let listing = try sandboxes.list(target.sandbox, path: target.path, caller: caller)
                let lines = listing.entries.map { "\($0.type == "directory" ? "d" : $0.type == "symlink" ? "l" : "-") \($0.name)" }
                return try answer(lines.isEmpty ? "(empty)" : lines.joined(separator: "\n"), listing)
            case "sandbox_kill":
                let target: Named = try decode(arguments, as: Named.self)
                try sandboxes.stop(target.sandbox, reason: "sandbox_kill by \(caller)", caller: caller)
                return try answer("stopped \(target.sandbox)", ["stopped": target.sandbox])
            case "sandbox_list":
                if let unknown = arguments?.keys.sorted().first {
                    throw Problem(status: 400, title: "bad arguments", detail: "\(unknown): sandbox_list takes no arguments")
                }
                let list = SandboxList(sandboxes: sandboxes.list(for: caller))
                let lines = list.sandboxes.map { "\($0.name) \($0.state)\($0.parent.map { " (sub-agent of \($0))" } ?? "")" }
                return try answer(lines.isEmpty ? "no sandboxes" : lines.joined(separator: "\n"), list)
            default:
                throw Problem(status: 404, title: "not found", detail: "no tool named \(name) (tools/list names them)")
            }
        } catch {
            return Self.failure(error)
        }
    }

    /// A failure as the model sees it: the detail, and for a denial the rule and its reason.
    static func failure(_ problem: Problem) -> CallTool.Result {
        var text = "\(problem.title): \(problem.detail)"
        if let rule = problem.rule { text += "\nrule: \(rule)" }
        if let reason = problem.reason { text += "\nreason: \(reason)" }
        return CallTool.Result(content: [.text(text: text, annotations: nil, _meta: nil)],
                               structuredContent: try? Value(problem), isError: true)
    }

    func answer<T: Codable>(_ text: String, _ structured: T) throws(Problem) -> CallTool.Result {
        do { return try CallTool.Result(content: [.text(text: text, annotations: nil, _meta: nil)], structuredContent: structured) } catch {
            throw Problem(status: 500, title: "internal error", detail: "the result could not be encoded: \(error)")
        }
    }

    /// The arguments as `T`, refusing any key its schema does not name.
    func decode<T: ToolArguments>(_ arguments: [String: Value]?, as type: T.Type) throws(Problem) -> T {
        let given = arguments ?? [:]
        if let unknown = given.keys.sorted().first(where: { !T.names.contains($0) }) {
            throw Problem(status: 400, title: "bad arguments", detail: "\(unknown): not an argument of this tool (its input schema names them)")
        }
        do {
            return try JSONDecoder().decode(T.self, from: JSONEncoder().encode(given))
        } catch {
            throw Problem(status: 400, title: "bad arguments", detail: APIServer.describe(error))
        }
    }

    // MARK: Calls

    func create(_ arguments: Create) throws(Problem) -> CallTool.Result {
        var body = CreateSandbox()
        body.name = arguments.name
        body.image = arguments.image
        body.policy = arguments.policy
        body.vcpus = arguments.vcpus
        body.memoryMiB = arguments.memoryMiB
        body.timeoutSeconds = arguments.timeoutSeconds
        body.idleTimeoutSeconds = arguments.idleTimeoutSeconds
        let info = try sandboxes.create(body, caller: caller)
        return try answer("sandbox \(info.name) is \(info.state)", info)
    }

    /// What run_command returns besides its text.
    struct Ran: Codable {
        var exitCode: Int?
        var signal: Int?
        var timedOut: Bool
        var stdout: String
        var stderr: String
        /// Bytes of output left out past `outputLimit`, both streams together.
        var droppedBytes: Int

        enum CodingKeys: String, CodingKey {
            case signal, stdout, stderr
            case exitCode = "exit_code", timedOut = "timed_out", droppedBytes = "dropped_bytes"
        }
    }

    func run(_ arguments: Run) throws(Problem) -> CallTool.Result {
        var command = RunCommand(argv: [])
        switch (arguments.command, arguments.argv) {
        case (let line?, nil): command.argv = ["/bin/sh", "-c", line]
        case (nil, let argv?): command.argv = argv
        default: throw Problem(status: 400, title: "bad arguments", detail: "give exactly one of command (a shell line) and argv")
        }
        command.stdin = arguments.stdin.map { Data($0.utf8).base64EncodedString() }
        command.env = arguments.env
        command.cwd = arguments.cwd
        command.timeoutSeconds = arguments.timeoutSeconds
        var out: [UInt8] = [], err: [UInt8] = []
        var dropped = 0
        var end: CommandEvent?
        try sandboxes.run(arguments.sandbox, command, caller: caller) { event in
            switch event.type {
            case "stdout", "stderr":
                let bytes = event.data.flatMap { Data(base64Encoded: $0) }.map(Array.init) ?? []
                let room = max(Self.outputLimit - (event.type == "stdout" ? out.count : err.count), 0)
                if event.type == "stdout" { out += bytes.prefix(room) } else { err += bytes.prefix(room) }
                dropped += max(bytes.count - room, 0)
            default: end = event
            }
        }
        let ran = Ran(exitCode: end?.exitCode, signal: end?.signal, timedOut: end?.timedOut ?? false,
                      stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self), droppedBytes: dropped)
        var text = ran.exitCode.map { "exit \($0)" } ?? ran.signal.map { "killed by signal \($0)" } ?? "ended"
        if ran.timedOut { text += " (timed out)" }
        if !ran.stdout.isEmpty { text += "\n--- stdout ---\n" + ran.stdout }
        if !ran.stderr.isEmpty { text += "\n--- stderr ---\n" + ran.stderr }
        if dropped > 0 { text += "\n(\(dropped) bytes of output past 1 MiB per stream left out)" }
        return try answer(text, ran)
    }

    /// What fs_read returns besides its text.
    struct ReadBack: Codable {
        var path: String
        var encoding: String
        var content: String
        var bytes: Int
        var truncated: Bool
    }

    func read(_ arguments: Read) throws(Problem) -> CallTool.Result {
        let limit = arguments.maxBytes ?? Self.outputLimit
        guard (1...Self.outputLimit).contains(limit) else {
            throw Problem(status: 400, title: "bad arguments", detail: "max_bytes \(limit): must be 1 to \(Self.outputLimit)")
        }
        var bytes: [UInt8] = []
        var truncated = false
        // One byte past the limit: enough to know the file goes on, and the guest sends no more.
        _ = try sandboxes.readFile(arguments.sandbox, path: arguments.path, length: UInt64(limit) + 1, caller: caller) { piece in
            let room = limit - bytes.count
            if piece.count > room { truncated = true }
            bytes += piece.prefix(max(room, 0))
        }
        let text = String(validating: bytes, as: UTF8.self)
        let back = ReadBack(path: arguments.path, encoding: text == nil ? "base64" : "utf-8",
                            content: text ?? Data(bytes).base64EncodedString(), bytes: bytes.count, truncated: truncated)
        return try answer(back.content + (truncated ? "\n(cut at \(limit) bytes)" : ""), back)
    }

    func write(_ arguments: Write) throws(Problem) -> CallTool.Result {
        let bytes: [UInt8]
        switch arguments.encoding ?? "utf-8" {
        case "utf-8": bytes = Array(arguments.content.utf8)
        case "base64":
            guard let decoded = Data(base64Encoded: arguments.content) else {
                throw Problem(status: 400, title: "bad arguments", detail: "content is not base64")
            }
            bytes = Array(decoded)
        case let other: throw Problem(status: 400, title: "bad arguments", detail: "encoding \(other): expected utf-8 or base64")
        }
        guard bytes.count <= Self.writeLimit else {
            throw Problem(status: 413, title: "content too large", detail: "\(bytes.count) bytes; fs_write takes at most \(Self.writeLimit)")
        }
        let written = try sandboxes.writeFile(arguments.sandbox, path: arguments.path, caller: caller, bytes: bytes)
        return try answer("wrote \(written) bytes to \(arguments.path)", WrittenFile(path: arguments.path, bytes: written))
    }
}

/// A tool's arguments: decoded from its call, with the names its schema allows.
protocol ToolArguments: Codable {
    associatedtype Keys: CodingKey & CaseIterable
}

extension ToolArguments {
    static var names: Set<String> { Set(Keys.allCases.map(\.stringValue)) }
}
