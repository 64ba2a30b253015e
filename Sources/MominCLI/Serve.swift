import APIServer
import ArgumentParser
import Glibc
import Host
import MominMCP

/// `momin serve`: the REST API (docs/api.md) on a Unix socket, over the same Host library as
/// these commands. Sandboxes it creates outlive it; a restarted server adopts them.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the MominAI API (docs/api.md) on a Unix socket, and on TCP with tokens, until SIGTERM or SIGINT.",
        discussion: """
            Callers are admitted by the kernel's word on who they are (SO_PEERCRED): this \
            server's user, and the members of --group. Only this server's user may name host \
            paths (kernels, disks, policy files, logs); others use image names and --policies \
            names. Sandboxes stop after --idle-timeout seconds without a call or a running \
            command, or when deleted; they outlive this server, and the next one adopts them.
            With --tcp, the API is also served over TCP (plain HTTP: keep it on loopback or put \
            TLS in front), where every request must carry Authorization: Bearer with a token \
            from --tokens; such callers never name host paths, and see only the sandboxes made \
            with their token's name. momin serve --tokens FILE --add-token NAME adds a token \
            and prints it (FILE keeps only its SHA-256). POST /mcp is MCP's Streamable HTTP \
            transport with momin mcp's tools, for the same callers; it answers only requests \
            addressed to a loopback name (Host and Origin).
            """)

    @Option(help: ArgumentHelp("The socket to listen on (default: $XDG_RUNTIME_DIR/momin/api.sock, /run/momin/api.sock for root, else /tmp/momin-UID/api.sock).",
                               valueName: "path"))
    var socket: String?

    @Option(help: "A group (name or id) whose members may call too; the socket is then mode 0660 and owned by it (else 0600).")
    var group: String?

    @OptionGroup var served: SandboxServerOptions

    @Option(help: ArgumentHelp("Also serve over TCP: PORT (on 127.0.0.1), A.B.C.D:PORT or [IPV6]:PORT; needs --tokens.", valueName: "address"))
    var tcp: String?

    @Option(help: ArgumentHelp("The bearer tokens TCP callers may present: a file of NAME sha256:HEX lines, this user's own, mode 0600.", valueName: "file"))
    var tokens: String?

    @Option(help: ArgumentHelp("Add a token named NAME to --tokens (made 0600 if absent), print it, and exit without serving.", valueName: "name"))
    var addToken: String?

    func validate() throws {
        if addToken != nil, tokens == nil { throw ValidationError("--add-token needs --tokens FILE: the file the token's digest goes to") }
        if tcp != nil, tokens == nil { throw ValidationError("--tcp needs --tokens FILE: over TCP, callers are known only by their tokens") }
        if tokens != nil, tcp == nil, addToken == nil { throw ValidationError("--tokens is for --tcp (or --add-token): the Unix socket knows its callers by their credentials") }
        if let tcp, case .failure(let problem) = TCPEndpoint.parse(tcp) { throw ValidationError("--tcp \(problem.message)") }
        if let group, CallerPolicy.groupID(group) == nil { throw ValidationError("--group \(group): no such group") }
    }

    func run() throws {
        if let addToken, let tokens {
            print(try BearerTokens.add(name: addToken, to: tokens))
            return
        }
        let host = hostEnvironment()
        // Checked before anything else is set up: a bad token file is bad input.
        let known = try tokens.map(BearerTokens.load)
        let sandboxes = try served.sandboxes(host)
        // The server's own user calls too; everything else is refused before it is read.
        let groupID = group.flatMap(CallerPolicy.groupID)
        let path = try socket ?? host.makeRuntimeDirectory() + "/api.sock"
        var endpoint: (fd: Int32, bound: TCPEndpoint)?
        if let tcp, case .success(let wanted) = TCPEndpoint.parse(tcp) {
            endpoint = try wanted.listen()
            if !wanted.isLoopback {
                host.warn("--tcp \(wanted) is not a loopback address: tokens and data cross the network in plain HTTP; put TLS in front")
            }
        }
        let listener = try APIServer.listen(path: path, group: groupID)
        let adopted = sandboxes.adopt()
        writeStandardError("momin serve: listening on \(path)\(endpoint.map { " and tcp \($0.bound) (\(known?.entries.count ?? 0) tokens)" } ?? "")"
                           + "\(adopted.isEmpty ? "" : "; adopted \(adopted.joined(separator: ", "))")\n")
        try APIServer(sandboxes: sandboxes, callers: CallerPolicy(group: groupID), tokens: known,
                      mcp: MCPHTTPService(sandboxes: sandboxes)).run(listener: listener, path: path, tcp: endpoint?.fd)
    }
}
