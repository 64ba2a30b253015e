import Ledger
import Testing

@Suite struct LedgerTreeTests {
    @Test func rendersTheTree() throws {
        var ledger = ResourceLedger(pool: HostPool(cpus: Array(2...7), memoryMiB: 15360, gpus: ["0000:41:00.0", "0000:81:00.0"]))
        try ledger.grant(id: "a", request: ResourceRequest(vcpus: 2, memoryMiB: 4096, gpus: .count(1),
                                                           subAgents: SubAgentRequest(maxCount: 2, cpus: 2, memoryMiB: 2048)), pid: 101)
        try ledger.grant(id: "b", parent: "a", request: ResourceRequest(vcpus: 1, memoryMiB: 1024), pid: 102)
        try ledger.grant(id: "c", request: ResourceRequest(vcpus: 1, memoryMiB: 512), pid: 103)
        let text = LedgerTree.render(ledger, usage: ["c": VMUsage(cpuPercent: 37, residentMiB: 400)])
        #expect(text == """
            host  cpus 2-7  15360 MiB  2 GPUs  free: cpus 7, 8704 MiB, 1 GPU
            ├─ a  pid 101  cpus 2-3  4096 MiB  gpus 0000:41:00.0  sub-agents 1/2 (free: cpus 5, 1024 MiB)
            │  └─ b  pid 102  cpus 4  1024 MiB  sub-agents 0/0
            └─ c  pid 103  cpus 6  512 MiB  sub-agents 0/0  using cpu 37%, 400 MiB

            """)
    }

    @Test func anEmptyLedger() {
        let ledger = ResourceLedger(pool: HostPool(cpus: [0], memoryMiB: 1, gpus: []))
        #expect(LedgerTree.render(ledger) == "host  cpus 0  1 MiB  0 GPUs  free: cpus 0, 1 MiB\n")
    }
}
