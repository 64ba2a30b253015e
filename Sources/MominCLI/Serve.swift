import APIServer
import ArgumentParser
import Glibc
import Host

/// `momin serve`: the REST API (docs/api.md) on a Unix socket, over the same Host library as
/// these commands. Sandboxes it creates outlive it; a restarted server adopts them.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the MominAI API (docs/api.md) on a Unix socket until SIGTERM or SIGINT.",
        discussion: """
            Callers are admitted by the kernel's word on who they are (SO_PEERCRED): this \
            server's user, and the members of --group. Only this server's user may name host \
            paths (kernels, disks, policy files, logs); others use image names and --policies \
            names. Sandboxes stop after --idle-timeout seconds without a call or a running \
            command, or when deleted; they outlive this server, and the next one adopts them.
            """)

    @Option(help: ArgumentHelp("The socket to listen on (default: $XDG_RUNTIME_DIR/momin/api.sock, /run/momin/api.sock for root, else /tmp/momin-UID/api.sock).",
                               valueName: "path"))
    var socket: String?

    @Option(help: "A group (name or id) whose members may call too; the socket is then mode 0660 and owned by it (else 0600).")
    var group: String?

    @Option(help: "The audit log (SQLite, docs/audit.md) of every sandbox created without one of its own.")
    var audit: String?

    @Option(help: ArgumentHelp("A directory of policy files: a sandbox asks for policy NAME, and gets DIR/NAME.yaml (or .yml, .json).",
                               valueName: "dir"))
    var policies: String?

    @Option(help: "Stop a sandbox created here after this many seconds without a call or a running command (per sandbox: idle_timeout_seconds).")
    var idleTimeout: Double = 1800

    func validate() throws {
        guard idleTimeout.isFinite, idleTimeout > 0 else { throw ValidationError("--idle-timeout \(idleTimeout) must be a number of seconds > 0") }
        if let group, CallerPolicy.groupID(group) == nil { throw ValidationError("--group \(group): no such group") }
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
        // The server's own user calls too; everything else is refused before it is read.
        let groupID = group.flatMap(CallerPolicy.groupID)
        let path = try socket ?? host.makeRuntimeDirectory() + "/api.sock"
        let listener = try APIServer.listen(path: path, group: groupID)
        let adopted = sandboxes.adopt()
        writeStandardError("momin serve: listening on \(path)\(adopted.isEmpty ? "" : "; adopted \(adopted.joined(separator: ", "))")\n")
        try APIServer(sandboxes: sandboxes, callers: CallerPolicy(group: groupID)).run(listener: listener, path: path)
    }
}
