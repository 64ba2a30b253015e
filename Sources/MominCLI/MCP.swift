import APIServer
import ArgumentParser
import Dispatch
import Glibc
import Host
import MominMCP
import POSIX

/// `momin mcp`: an MCP server on standard input and output (docs/api.md, "MCP"), with the tools
/// momin serve has at /mcp, calling as this user. The sandboxes it made stop when the client
/// closes its end, unless --keep.
struct MCPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Serve MominAI's MCP tools on standard input and output.",
        discussion: """
            An MCP client starts this command and speaks JSON-RPC on its standard input and \
            output (MCP's stdio transport); diagnostics go to standard error. The tools: \
            sandbox_create, run_command, fs_read, fs_write, fs_list, sandbox_kill and \
            sandbox_list, each judged by the sandbox's policy and written to its audit log with \
            "via momin mcp". Sandboxes idle for --idle-timeout seconds stop; the others made in \
            this session stop when the client closes standard input, unless --keep, which leaves \
            them for momin serve to adopt.
            """)

    @Option(help: "The audit log (SQLite, docs/audit.md) of every sandbox created without one of its own.")
    var audit: String?

    @Option(help: ArgumentHelp("A directory of policy files: sandbox_create's policy NAME is DIR/NAME.yaml (or .yml, .json).", valueName: "dir"))
    var policies: String?

    @Option(help: "Stop a sandbox after this many seconds without a call or a running command.")
    var idleTimeout: Double = 1800

    @Flag(help: "Leave this session's sandboxes running when the client goes.")
    var keep = false

    func validate() throws {
        guard idleTimeout.isFinite, idleTimeout > 0 else { throw ValidationError("--idle-timeout \(idleTimeout) must be a number of seconds > 0") }
        if let policies {
            var st = stat()
            guard stat(policies, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else { throw ValidationError("--policies \(policies): not a directory") }
        }
    }

    func run() throws {
        let host = hostEnvironment()
        var settings = Sandboxes.Configuration()
        settings.idleSeconds = idleTimeout
        settings.audit = audit.map(Paths.absolute)
        settings.policies = policies.map(Paths.absolute)
        let sandboxes = try Sandboxes(environment: host, images: imageStore(processEnvironment()), configuration: settings)
        let caller = Caller.thisProcess(via: "momin mcp")
        // The idle timer and the reaping of exited VMMs, as momin serve does them.
        try? POSIXThread.detach(name: "mcp-idle") {
            while true {
                sleep(10)
                sandboxes.stopIdle()
                sandboxes.reapChildren()
            }
        }
        let tools = SandboxTools(sandboxes: sandboxes, caller: caller)
        let failure = MCPEndpoints.blockingThrowing { try await MCPEndpoints.serveStandardIO(tools) }
        if !keep {
            for name in sandboxes.stopAll(createdBy: caller, reason: "momin mcp: the client closed its session") {
                writeStandardError("momin mcp: stopped \(name)\n")
            }
        }
        if let failure { throw CLIError("momin mcp: \(failure)", .failure) }
    }
}
