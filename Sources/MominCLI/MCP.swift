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

    @OptionGroup var served: SandboxServerOptions

    @Flag(help: "Leave this session's sandboxes running when the client goes.")
    var keep = false

    func run() throws {
        let host = hostEnvironment()
        let sandboxes = try served.sandboxes(host)
        let caller = Caller.thisProcess(via: "momin mcp")
        // The idle timer and the reaping of exited VMMs, every 10 s as momin serve does them.
        try? POSIXThread.detach(name: "mcp-idle") {
            while true {
                sleep(10)
                sandboxes.tend()
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
