import ArgumentParser
import Host

/// `momin start NAME`: boots a microVM that stays up, serving Doors, until `momin stop NAME`.
struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start a named microVM that stays up until `momin stop`.")

    @Argument(help: "The VM's name.") var name: String
    @OptionGroup var machine: MachineOptions
    @OptionGroup var governance: GovernanceOptions

    @Option(help: "A bucket store (SQLite, docs/buckets.md) for the hands bucket calls made inside the VM and its sub-agents.")
    var buckets: String?

    func run() throws {
        let request = StartRequest(name: name, machine: machine.request, governance: governance.request, buckets: buckets)
        try VMStart(environment: hostEnvironment(), images: imageStore(processEnvironment())).start(request)
        print(name)
    }
}
