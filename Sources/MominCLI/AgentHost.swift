import ArgumentParser
import Host

/// `momin agent-host NAME` (started by `momin start`, detached): serves the hands calls of the
/// long-lived VM NAME and of the sub-agents it starts, until the VM is gone or SIGTERM.
struct AgentHostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent-host", abstract: "Serve a long-lived VM's hands calls (started by momin start).", shouldDisplay: false)

    @Argument(help: "The VM's name.") var name: String

    func run() throws {
        try AgentHost.serve(name, environment: hostEnvironment())
    }
}
