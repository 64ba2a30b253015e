import ArgumentParser
import Host
import Ledger

/// `momin ps`: the named VMs; stale state left by a crashed momin-vmm is reported and cleaned.
struct PS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps", abstract: "List the named microVMs; with --tree, every VM's grant of host resources.")

    @Flag(help: "Show the resource ledger: the host's pool, and each VM (started or run) under its parent with its grant and use.")
    var tree = false

    func run() throws {
        let host = hostEnvironment()
        if tree { return try printTree(host) }
        let registry = try VMRegistry.open(host)
        let control = VMControl(registry: registry, environment: host)
        print("NAME                 PID      VCPUS  MEMORY  STATE")
        for name in registry.names() {
            let info = registry.info(name).split(separator: " ")
            let vcpus = info.first.map(String.init) ?? "?"
            let memory = info.dropFirst().first.map { "\($0)M" } ?? "?"
            switch registry.state(name) {
            case .running(let pid):
                print(pad(name, 20), pad(String(pid), 8), pad(vcpus, 6), pad(memory, 7), "running")
            case .starting(let launcher):
                print(pad(name, 20), pad("-", 8), pad(vcpus, 6), pad(memory, 7), "starting (launched by pid \(launcher))")
            case .stale(let why):
                control.free(name)
                print(pad(name, 20), pad("-", 8), pad(vcpus, 6), pad(memory, 7), "stale (\(why)); cleaned")
            case .absent:
                continue
            }
        }
    }

    func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }

    /// The ledger after reaping dead VMMs, with each live VMM's CPU use over 200 ms and its RSS.
    func printTree(_ host: HostEnvironment) throws {
        let (ledger, usage, reaped) = try HostResources(host).usage()
        print(LedgerTree.render(ledger, usage: usage), terminator: "")
        for id in reaped { writeStandardError("momin: freed the grant of VM \(id), whose momin-vmm is gone\n") }
    }
}
