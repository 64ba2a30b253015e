import APIServer
import ArgumentParser
import Glibc
import Host

/// `--audit`, `--policies` and `--idle-timeout`, as `momin serve` and `momin mcp` take them: how
/// the sandboxes a server creates are governed and when they stop.
struct SandboxServerOptions: ParsableArguments {
    @Option(help: "The audit log (SQLite, docs/audit.md) of every sandbox created without one of its own.")
    var audit: String?

    @Option(help: ArgumentHelp("A directory of policy files: a sandbox asks for policy NAME, and gets DIR/NAME.yaml (or .yml, .json).",
                               valueName: "dir"))
    var policies: String?

    @Option(help: "Stop a sandbox created here after this many seconds without a call or a running command (per sandbox: idle_timeout_seconds).")
    var idleTimeout: Double = 1800

    // ValidationError, not CLIError: ArgumentParser passes only that on as bad input (exit 2).
    func validate() throws {
        guard idleTimeout.isFinite, idleTimeout > 0 else { throw ValidationError("--idle-timeout \(idleTimeout) must be a number of seconds > 0") }
        if let policies {
            var st = stat()
            guard stat(policies, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else { throw ValidationError("--policies \(policies): not a directory") }
        }
    }

    /// The sandboxes of this host, as a server with these options manages them.
    func sandboxes(_ host: HostEnvironment) throws -> Sandboxes {
        var settings = Sandboxes.Configuration()
        settings.idleSeconds = idleTimeout
        settings.audit = audit.map(Paths.absolute)
        settings.policies = policies.map(Paths.absolute)
        return try Sandboxes(environment: host, images: imageStore(processEnvironment()), configuration: settings)
    }
}
