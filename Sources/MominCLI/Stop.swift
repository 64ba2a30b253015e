import ArgumentParser
import Host

/// `momin stop NAME`: stops a VM and every sub-agent under it, deepest first (SIGTERM to each
/// momin-vmm, SIGKILL after 10 s), and removes their state.
struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop a named microVM and the sub-agents it started.")

    @Argument(help: "The VM's name.") var name: String

    func run() throws {
        let host = hostEnvironment()
        try VMControl(registry: try VMRegistry.open(host), environment: host).stop(name)
    }
}
