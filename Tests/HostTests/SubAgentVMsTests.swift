import Agents
import Doors
import Gateway
import Host
import Ledger
import Policy
import Testing

/// Sub-agents through the real launcher: `SubAgentVMs` over a real registry and resource ledger
/// (a fake momin-vmm, as in `LaunchTests`).
@Suite(.serialized) struct SubAgentVMsTests {
    /// The ledger's own refusal, not a string a fake put there, reaches the agent that asked as
    /// noRoom (hands exits 75), with the ledger's words; nothing of the child is left.
    @Test func theLedgersRefusalReachesTheCallerAsNoRoom() throws {
        let host = try TestHost()
        let registry = try VMRegistry.open(host.environment)
        var launch = HostedVM.Launch(name: "p")
        launch.jail = .unjailed
        // Beside its own 1 vCPU and 256 MiB, the parent holds 1 CPU and 256 MiB for one sub-agent.
        launch.budget = SubAgentRequest(maxCount: 1, cpus: 1, memoryMiB: 256)
        let parent = try HostedVM.launch(launch, config: testMachine(), registry: registry, environment: host.environment)
        defer { _ = parent.halt() }
        #expect(host.waitForVMM(parent.vm.pid) != nil)

        let vms = SubAgentVMs(registry: registry, environment: host.environment, base: testMachine(), jail: .unjailed, log: nil,
                              requestIDs: RequestNumbers())
        let tree = AgentTree(store: nil, launcher: vms, requestIDs: RequestNumbers())
        let policy = try AgentPolicy.parse("version: 1\nagent: p\nresources: { vcpus: 3, memory_mib: 1024, sub_agents: 1 }\n",
                                           format: .yaml, file: "p.yaml")
        try tree.addRoot(Agent(name: "p", parent: nil, session: GovernedSession(agent: "p", policy: policy, log: nil, resolver: NoGuestPaths())),
                         handsSocket: registry.handsSocket("p"))
        defer { tree.shutDown(root: "p", reason: "test over") }

        let child = "version: 1\nagent: c\nresources: { vcpus: 2, memory_mib: 512 }\n"
        let reply = tree.handle(.spawn(SpawnRequest(name: "c", policy: Array(child.utf8), policyFormat: "yaml", vcpus: 2, memoryMiB: 256,
                                                    argv: ["/bin/true"])), from: "p")
        guard case .failed(let code, let message) = reply else {
            Issue.record("a 2-CPU sub-agent fit in a 1-CPU budget: \(reply)")
            return
        }
        #expect(code == .noRoom && code.exitStatus == 75)
        #expect(message == #"sub-agent p.c: no room for VM p.c under p: VM "p.c" asks for 2 CPUs, 1 is free (cpus 1) under "p""#)
        #expect(registry.state("p.c") == .absent)
        #expect(try host.ledgerOnDisk().grant("p.c") == nil)
        #expect(try host.ledgerOnDisk().grant("p") != nil)
    }
}
