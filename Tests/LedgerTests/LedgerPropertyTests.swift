import Ledger
import TestRandom
import Testing

/// Random grants, releases and reaps with fixed seeds: whatever the sequence, no CPU or GPU is
/// in two grants and no child holds more than its parent's budget.
@Suite struct LedgerPropertyTests {
    static let gpus = (0..<4).map { "0000:\($0 + 10):00.0" }
    static let pool = HostPool(cpus: Array(1...24), memoryMiB: 65536, gpus: gpus)

    static func randomRequest(_ random: inout SeededGenerator) -> ResourceRequest {
        let gpus: GPURequest = random.chance(20) ? .addresses([random.pick(Self.gpus)]) : .count(random.chance(15) ? 1 : 0)
        let budget = random.chance(50)
            ? SubAgentRequest(maxCount: Int.random(in: 0...3, using: &random), cpus: Int.random(in: 0...6, using: &random),
                              memoryMiB: Int.random(in: 0...8192, using: &random), gpus: .count(random.chance(20) ? 1 : 0))
            : .none
        return ResourceRequest(vcpus: Int.random(in: 1...4, using: &random), memoryMiB: Int.random(in: 1...8192, using: &random),
                               gpus: gpus, subAgents: budget)
    }

    /// Checks every scope (the host pool, each budget) against the children carved from it.
    static func checkInvariants(_ ledger: ResourceLedger) {
        var ownCPUs = Set<Int>()
        var ownGPUs = Set<String>()
        for grant in ledger.allGrants {
            #expect(!grant.cpus.isEmpty)
            for cpu in grant.cpus { #expect(ownCPUs.insert(cpu).inserted, "cpu \(cpu) is in two grants") }
            for gpu in grant.gpus { #expect(ownGPUs.insert(gpu).inserted, "GPU \(gpu) is in two grants") }
        }
        #expect(ownCPUs.isSubset(of: pool.cpus))
        #expect(ownGPUs.isSubset(of: pool.gpus))
        let scopes: [(String?, [Int], Int, [String], Int?)] = [(nil, pool.cpus, pool.memoryMiB, pool.gpus, nil)]
            + ledger.allGrants.map { ($0.id, $0.subAgents.cpus, $0.subAgents.memoryMiB, $0.subAgents.gpus, $0.subAgents.maxCount) }
        for (id, cpus, memory, gpus, maxCount) in scopes {
            let children = ledger.children(of: id)
            var cpusTaken = Set<Int>()
            var gpusTaken = Set<String>()
            for child in children {
                for cpu in child.allCPUs { #expect(cpusTaken.insert(cpu).inserted) }
                for gpu in child.allGPUs { #expect(gpusTaken.insert(gpu).inserted) }
            }
            #expect(cpusTaken.isSubset(of: cpus), "children of \(id ?? "host") hold CPUs outside its budget")
            #expect(gpusTaken.isSubset(of: gpus))
            #expect(children.reduce(0) { $0 + $1.allMemoryMiB } <= memory)
            if let maxCount { #expect(children.count <= maxCount) }
            #expect(ledger.depth(of: id ?? "") <= ledger.maxDepth)
        }
    }

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func randomSequencesKeepTheInvariants(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        var granted = 0
        var refused = 0
        var children = 0
        for _ in 0..<60 {
            var ledger = ResourceLedger(pool: Self.pool, maxDepth: 3)
            var next = 0
            for _ in 0..<40 {
                let ids = ledger.allGrants.map(\.id)
                if !ids.isEmpty, random.chance(25) {
                    let released = try ledger.release(id: random.pick(ids))
                    #expect(released.allSatisfy { ledger.grant($0) == nil })
                } else if !ids.isEmpty, random.chance(5) {
                    let dead = Int32(Int.random(in: 1...max(next, 1), using: &random))
                    _ = ledger.reap { $0.pid != dead }
                } else {
                    let parent: String? = ids.isEmpty || random.chance(40) ? nil : random.pick(ids)
                    let before = ledger
                    do {
                        try ledger.grant(id: "vm\(next)", parent: parent, request: Self.randomRequest(&random), pid: Int32(next + 1))
                        granted += 1
                        if parent != nil { children += 1 }
                    } catch {
                        refused += 1
                        #expect(ledger == before, "a refused grant changed the ledger")
                    }
                    next += 1
                }
                Self.checkInvariants(ledger)
            }
            let restored = try ResourceLedger.decode(Array(ledger.encoded().utf8), maxDepth: 3)
            #expect(restored == ledger)
        }
        // The sequences exercise both sides, sub-agents included.
        #expect(granted > 200)
        #expect(refused > 100)
        #expect(children > 25)
    }
}
