import ArgumentParser
import Host

/// `momin stop NAME`: stops a VM and every sub-agent under it, deepest first (SIGTERM to each
/// momin-vmm, SIGKILL after 10 s), and removes their state.
struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop a named microVM and the sub-agents it started.")

    @Argument(help: "The VM's name.") var name: String

    @Flag(help: "Also delete the VM's scratch disk (momin start --scratch); with the VM already stopped, only that.")
    var removeScratch = false

    func run() throws {
        let host = hostEnvironment()
        let registry = try VMRegistry.open(host)
        let control = VMControl(registry: registry, environment: host)
        guard removeScratch else { return try control.stop(name) }
        try VMRegistry.validate(name)
        switch registry.state(name) {
        case .absent: break
        default: try control.stop(name)
        }
        guard try ScratchDisk.remove(for: name, registry: registry, environment: host) else {
            throw CLIError.usage("VM \(name) has no scratch disk (\(ScratchDisk.path(for: name, in: host)))")
        }
    }
}
