import Ledger
import Testing

@Suite struct LedgerTests {
    static let gpuA = "0000:41:00.0"
    static let gpuB = "0000:81:00.0"
    /// CPUs 2-9, 16384 MiB, two GPUs.
    static let pool = HostPool(cpus: Array(2...9), memoryMiB: 16384, gpus: [gpuA, gpuB])

    /// "a" (2 vCPUs, 4096 MiB, a GPU) with a budget of 3 CPUs and 2048 MiB for 2 sub-agents,
    /// and "b" (2 vCPUs, 1024 MiB) under it.
    static func twoLevels() throws -> ResourceLedger {
        var ledger = ResourceLedger(pool: pool)
        try ledger.grant(id: "a", request: ResourceRequest(vcpus: 2, memoryMiB: 4096, gpus: .count(1),
                                                           subAgents: SubAgentRequest(maxCount: 2, cpus: 3, memoryMiB: 2048)), pid: 100)
        try ledger.grant(id: "b", parent: "a", request: ResourceRequest(vcpus: 2, memoryMiB: 1024), pid: 101)
        return ledger
    }

    /// The refusal's text, or nil when it was granted.
    static func refusal(_ body: () throws -> Void) -> String? {
        do { try body() } catch { return (error as? LedgerError)?.description ?? "not a LedgerError: \(error)" }
        return nil
    }

    @Test func carvesTheLowestFreeIDs() throws {
        let ledger = try Self.twoLevels()
        let a = try #require(ledger.grant("a"))
        #expect(a.cpus == [2, 3])
        #expect(a.gpus == [Self.gpuA])
        #expect(a.subAgents == SubAgentBudget(maxCount: 2, cpus: [4, 5, 6], memoryMiB: 2048, gpus: []))
        #expect(ledger.grant("b") == Grant(id: "b", parent: "a", pid: 101, cpus: [4, 5], memoryMiB: 1024, gpus: [], subAgents: .none))
        #expect(try ledger.free() == FreeResources(cpus: [7, 8, 9], memoryMiB: 16384 - 6144, gpus: [Self.gpuB], slots: nil))
        #expect(try ledger.free(under: "a") == FreeResources(cpus: [6], memoryMiB: 1024, gpus: [], slots: 1))
        #expect(ledger.depth(of: "b") == 2)
        #expect(ledger.children(of: "a").map(\.id) == ["b"])
    }

    @Test func refusalsSayWhatDidNotFitAndWhatIsFree() throws {
        var ledger = try Self.twoLevels()
        #expect(Self.refusal { try ledger.grant(id: "c", parent: "a", request: ResourceRequest(vcpus: 2, memoryMiB: 512), pid: 1) }
            == #"VM "c" asks for 2 CPUs, 1 is free (cpus 6) under "a""#)
        #expect(Self.refusal { try ledger.grant(id: "c", parent: "a", request: ResourceRequest(vcpus: 1, memoryMiB: 2048), pid: 1) }
            == #"VM "c" asks for 2048 MiB, 1024 MiB are free under "a""#)
        #expect(Self.refusal { try ledger.grant(id: "c", parent: "a", request: ResourceRequest(vcpus: 1, memoryMiB: 512, gpus: .count(1)), pid: 1) }
            == #"VM "c" asks for 1 GPU, 0 are free under "a""#)
        #expect(Self.refusal {
            try ledger.grant(id: "e", request: ResourceRequest(vcpus: 2, memoryMiB: 512, subAgents: SubAgentRequest(maxCount: 1, cpus: 2)), pid: 1)
        } == #"VM "e" asks for 4 CPUs (2 for itself, 2 for sub-agents), 3 are free (cpus 7-9) under the host"#)
        #expect(Self.refusal {
            try ledger.grant(id: "e", request: ResourceRequest(vcpus: 1, memoryMiB: 8192, subAgents: SubAgentRequest(maxCount: 1, memoryMiB: 4096)), pid: 1)
        } == #"VM "e" asks for 12288 MiB (8192 for itself, 4096 for sub-agents), 10240 MiB are free under the host"#)
        #expect(Self.refusal { try ledger.grant(id: "e", request: ResourceRequest(vcpus: 1, memoryMiB: 1, gpus: .count(2)), pid: 1) }
            == #"VM "e" asks for 2 GPUs, 1 is free (0000:81:00.0) under the host"#)
        #expect(Self.refusal { try ledger.grant(id: "e", request: ResourceRequest(vcpus: 1, memoryMiB: 1, gpus: .addresses([Self.gpuA])), pid: 1) }
            == #"VM "e" asks for GPU 0000:41:00.0, which "a" holds under the host; free there: 0000:81:00.0"#)
        #expect(Self.refusal { try ledger.grant(id: "e", request: ResourceRequest(vcpus: 1, memoryMiB: 1, gpus: .addresses(["0000:99:00.0"])), pid: 1) }
            == #"VM "e" asks for GPU 0000:99:00.0, which is not in the pool under the host; free there: 0000:81:00.0"#)
        // Nothing refused changed the ledger.
        #expect(ledger == (try Self.twoLevels()))
    }

    @Test func theTreeIsBounded() throws {
        var ledger = try Self.twoLevels()
        try ledger.grant(id: "c", parent: "a", request: ResourceRequest(vcpus: 1, memoryMiB: 512), pid: 102)
        #expect(Self.refusal { try ledger.grant(id: "d", parent: "a", request: ResourceRequest(vcpus: 1, memoryMiB: 1), pid: 1) }
            == #"VM "d" is refused: "a" may have 2 sub-agents and has 2 ("b", "c")"#)
        #expect(Self.refusal { try ledger.grant(id: "d", parent: "b", request: ResourceRequest(vcpus: 1, memoryMiB: 1), pid: 1) }
            == #"VM "d" is refused: "b" may have 0 sub-agents and has 0"#)
        #expect(Self.refusal { try ledger.grant(id: "b", request: ResourceRequest(vcpus: 1, memoryMiB: 1), pid: 1) }
            == #"VM "b" already has a grant"#)
        #expect(Self.refusal { try ledger.grant(id: "d", parent: "x", request: ResourceRequest(vcpus: 1, memoryMiB: 1), pid: 1) }
            == #"VM "d" names parent "x", which has no grant"#)
        #expect(Self.refusal { try ledger.grant(id: "d", request: ResourceRequest(vcpus: 0, memoryMiB: 1), pid: 1) }
            == #"VM "d": vcpus must be at least 1 (asked 0)"#)
        #expect(Self.refusal { try ledger.release(id: "x") } == #"no grant for VM "x""#)

        var shallow = ResourceLedger(pool: Self.pool, maxDepth: 2)
        let withBudget = ResourceRequest(vcpus: 1, memoryMiB: 1024, subAgents: SubAgentRequest(maxCount: 1, cpus: 2, memoryMiB: 1024))
        try shallow.grant(id: "p", request: withBudget, pid: 1)
        try shallow.grant(id: "q", parent: "p", request: ResourceRequest(vcpus: 1, memoryMiB: 256, subAgents: SubAgentRequest(maxCount: 1, cpus: 1)), pid: 1)
        #expect(Self.refusal { try shallow.grant(id: "r", parent: "q", request: ResourceRequest(vcpus: 1, memoryMiB: 1), pid: 1) }
            == #"VM "r" under "q" would be 3 levels deep; the limit is 2"#)
    }

    @Test func releaseFreesTheWholeSubtree() throws {
        var ledger = try Self.twoLevels()
        try ledger.grant(id: "c", parent: "a", request: ResourceRequest(vcpus: 1, memoryMiB: 512), pid: 102)
        try ledger.grant(id: "z", request: ResourceRequest(vcpus: 1, memoryMiB: 512), pid: 200)
        #expect(try ledger.release(id: "b") == ["b"])
        #expect(try ledger.free(under: "a") == FreeResources(cpus: [4, 5], memoryMiB: 1536, gpus: [], slots: 1))
        try ledger.grant(id: "b2", parent: "a", request: ResourceRequest(vcpus: 2, memoryMiB: 1024), pid: 103)
        #expect(try ledger.release(id: "a") == ["c", "b2", "a"])
        #expect(ledger.allGrants.map(\.id) == ["z"])
        #expect(try ledger.free() == FreeResources(cpus: [2, 3, 4, 5, 6, 8, 9], memoryMiB: 16384 - 512, gpus: [Self.gpuA, Self.gpuB], slots: nil))
    }

    @Test func reapingReleasesTheDeadAndTheirChildren() throws {
        var ledger = try Self.twoLevels()
        try ledger.grant(id: "z", request: ResourceRequest(vcpus: 1, memoryMiB: 512), pid: 200)
        #expect(ledger.reap { $0.pid != 100 } == ["b", "a"])
        #expect(ledger.allGrants.map(\.id) == ["z"])
        #expect(ledger.reap { _ in true } == [])
        try ledger.setPID(4242, for: "z")
        #expect(ledger.grant("z")?.pid == 4242)
    }

    @Test func specificGPUsAndSubAgentGPUs() throws {
        var ledger = ResourceLedger(pool: Self.pool)
        try ledger.grant(id: "a", request: ResourceRequest(vcpus: 1, memoryMiB: 1, gpus: .addresses([Self.gpuB]),
                                                           subAgents: SubAgentRequest(maxCount: 1, cpus: 1, memoryMiB: 1, gpus: .count(1))), pid: 1)
        #expect(ledger.grant("a")?.gpus == [Self.gpuB])
        #expect(ledger.grant("a")?.subAgents.gpus == [Self.gpuA])
        try ledger.grant(id: "b", parent: "a", request: ResourceRequest(vcpus: 1, memoryMiB: 1, gpus: .addresses([Self.gpuA])), pid: 2)
        #expect(Self.refusal { try ledger.grant(id: "c", request: ResourceRequest(vcpus: 1, memoryMiB: 1, gpus: .count(1)), pid: 3) }
            == #"VM "c" asks for 1 GPU, 0 are free under the host"#)
    }

    @Test func aRestoredLedgerIsCheckedLikeANewOne() throws {
        let ledger = try Self.twoLevels()
        #expect(try ResourceLedger(pool: Self.pool, grants: ledger.allGrants) == ledger)
        var grants = ledger.allGrants
        grants.append(Grant(id: "c", parent: "a", pid: 1, cpus: [5], memoryMiB: 1, gpus: [], subAgents: .none))
        #expect(throws: LedgerError.cpuNotFree(vm: "c", under: "a", cpu: 5, heldBy: "b")) {
            try ResourceLedger(pool: Self.pool, grants: grants)
        }
        #expect(throws: LedgerError.unknownParent(vm: "b", parent: "a")) {
            try ResourceLedger(pool: Self.pool, grants: Array(ledger.allGrants.reversed()))
        }
        let smaller = HostPool(cpus: [2, 3, 4, 5], memoryMiB: 16384, gpus: [Self.gpuA])
        #expect(throws: LedgerError.cpuNotFree(vm: "a", under: nil, cpu: 6, heldBy: nil)) {
            try ResourceLedger(pool: smaller, grants: ledger.allGrants)
        }
    }
}

extension LedgerTests {
    @Test func aGPUIsEitherOwnOrForSubAgents() {
        var ledger = ResourceLedger(pool: Self.pool)
        let request = ResourceRequest(vcpus: 1, memoryMiB: 1, gpus: .addresses([Self.gpuA]),
                                      subAgents: SubAgentRequest(maxCount: 1, gpus: .addresses([Self.gpuA])))
        #expect(Self.refusal { try ledger.grant(id: "a", request: request, pid: 1) }
            == #"VM "a": a GPU cannot be both its own and its sub-agents'"#)
        #expect(Self.refusal { try ledger.grant(id: "a", request: ResourceRequest(vcpus: 1, memoryMiB: 1), pid: 0) }
            == #"VM "a": pid 0 is not a process id"#)
    }
}
