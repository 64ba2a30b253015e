/// Who holds which of the host's CPUs, memory and GPUs. Pure: no I/O, no clock; the store
/// (`LedgerStore`) keeps it across processes.
///
/// A top-level grant is carved from the host pool; a sub-agent's grant from its parent's
/// sub-agent budget (`Grant.subAgents`), never from the parent's own share. So a child never
/// gets more than is still free in its parent, and the parent's VM keeps its own CPUs (at
/// least 1) whatever its children do. CPU and GPU ids are exclusive: each is in one grant's
/// own share or one sub-agent budget that no child has taken it from.
public struct ResourceLedger: Sendable, Equatable {
    public static let defaultMaxDepth = 4

    public let pool: HostPool
    /// How many levels of VMs: 1 allows top-level VMs only.
    public let maxDepth: Int
    private var grants: [String: Grant] = [:]
    /// Ids in the order they were granted (a parent before its children).
    private var order: [String] = []

    public init(pool: HostPool, maxDepth: Int = defaultMaxDepth) {
        self.pool = pool
        self.maxDepth = maxDepth
    }

    /// A ledger holding `grants`, each checked as if granted in this order (parents first):
    /// how a stored ledger is restored, or moved onto a changed pool.
    public init(pool: HostPool, maxDepth: Int = defaultMaxDepth, grants: [Grant]) throws(LedgerError) {
        self.init(pool: pool, maxDepth: maxDepth)
        for grant in grants {
            try admit(grant)
            insert(grant)
        }
    }

    /// Every grant, parents before their children.
    public var allGrants: [Grant] { order.compactMap { grants[$0] } }

    public func grant(_ id: String) -> Grant? { grants[id] }

    /// The direct children of `parent` (of the host pool when nil), in the order granted.
    public func children(of parent: String?) -> [Grant] { allGrants.filter { $0.parent == parent } }

    /// 1 for a top-level VM.
    public func depth(of id: String) -> Int {
        var depth = 0
        var current: String? = id
        while let name = current, let grant = grants[name] {
            depth += 1
            current = grant.parent
        }
        return depth
    }

    /// What is free under the host pool (nil) or under a VM's sub-agent budget.
    public func free(under parent: String? = nil) throws(LedgerError) -> FreeResources {
        let budget: (cpus: [Int], memory: Int, gpus: [String], slots: Int?)
        if let parent {
            guard let grant = grants[parent] else { throw .unknownVM(parent) }
            budget = (grant.subAgents.cpus, grant.subAgents.memoryMiB, grant.subAgents.gpus, grant.subAgents.maxCount)
        } else {
            budget = (pool.cpus, pool.memoryMiB, pool.gpus, nil)
        }
        let children = children(of: parent)
        let usedCPUs = Set(children.flatMap(\.allCPUs))
        let usedGPUs = Set(children.flatMap(\.allGPUs))
        return FreeResources(
            cpus: budget.cpus.filter { !usedCPUs.contains($0) },
            memoryMiB: budget.memory - children.reduce(0) { $0 + $1.allMemoryMiB },
            gpus: budget.gpus.filter { !usedGPUs.contains($0) },
            slots: budget.slots.map { $0 - children.count })
    }

    /// Carves a grant for VM `id` out of `parent`'s sub-agent budget (the host pool when nil):
    /// the lowest free CPU ids for its vCPUs, then for its sub-agent budget; GPUs likewise, or
    /// the addresses asked for. Refuses with what did not fit and what is free.
    @discardableResult
    public mutating func grant(id: String, parent: String? = nil, request: ResourceRequest, pid: Int32) throws(LedgerError) -> Grant {
        try check(request, id: id)
        guard pid > 0 else { throw .invalidRequest(vm: id, why: "pid \(pid) is not a process id") }
        try checkPlace(id: id, parent: parent)
        let free = try free(under: parent)
        let spare = request.subAgents
        guard request.vcpus + spare.cpus <= free.cpus.count else {
            throw .cpusDoNotFit(vm: id, under: parent, own: request.vcpus, forSubAgents: spare.cpus, free: free.cpus)
        }
        guard request.memoryMiB + spare.memoryMiB <= free.memoryMiB else {
            throw .memoryDoesNotFit(vm: id, under: parent, own: request.memoryMiB, forSubAgents: spare.memoryMiB, freeMiB: free.memoryMiB)
        }
        var freeGPUs = free.gpus
        let ownGPUs = try take(request.gpus, from: &freeGPUs, vm: id, parent: parent, asked: request.gpus.count + spare.gpus.count)
        let spareGPUs = try take(spare.gpus, from: &freeGPUs, vm: id, parent: parent, asked: request.gpus.count + spare.gpus.count)
        let cpus = Array(free.cpus.prefix(request.vcpus + spare.cpus))
        let grant = Grant(
            id: id, parent: parent, pid: pid, cpus: Array(cpus.prefix(request.vcpus)), memoryMiB: request.memoryMiB, gpus: ownGPUs,
            subAgents: SubAgentBudget(maxCount: spare.maxCount, cpus: Array(cpus.dropFirst(request.vcpus)),
                                      memoryMiB: spare.memoryMiB, gpus: spareGPUs))
        insert(grant)
        return grant
    }

    /// Frees VM `id` and its whole subtree; returns the ids released, each after its
    /// descendants (the order to stop them in).
    @discardableResult
    public mutating func release(id: String) throws(LedgerError) -> [String] {
        guard grants[id] != nil else { throw .unknownVM(id) }
        var released: [String] = []
        func collect(_ name: String) {
            for child in order where grants[child]?.parent == name { collect(child) }
            released.append(name)
        }
        collect(id)
        for name in released { grants[name] = nil }
        order.removeAll { grants[$0] == nil }
        return released
    }

    /// Records the VMM's pid once it is started (the grant is first made with the launcher's),
    /// and, where known, when that process started.
    public mutating func setPID(_ pid: Int32, start: UInt64? = nil, for id: String) throws(LedgerError) {
        guard grants[id] != nil else { throw .unknownVM(id) }
        guard pid > 0 else { throw .invalidRequest(vm: id, why: "pid \(pid) is not a process id") }
        grants[id]?.pid = pid
        grants[id]?.pidStart = start
    }

    /// Releases every grant whose process `isAlive` says is gone, with its subtree; returns
    /// the ids released.
    public mutating func reap(isAlive: (Grant) -> Bool) -> [String] {
        var released: [String] = []
        for id in order where grants[id] != nil {
            guard let grant = grants[id], !isAlive(grant) else { continue }
            released += (try? release(id: id)) ?? []
        }
        return released
    }

    // MARK: Checks

    private func check(_ request: ResourceRequest, id: String) throws(LedgerError) {
        func invalid(_ why: String) -> LedgerError { .invalidRequest(vm: id, why: why) }
        guard request.vcpus >= 1 else { throw invalid("vcpus must be at least 1 (asked \(request.vcpus))") }
        guard request.memoryMiB >= 1 else { throw invalid("memory must be at least 1 MiB (asked \(request.memoryMiB))") }
        let spare = request.subAgents
        guard spare.maxCount >= 0, spare.cpus >= 0, spare.memoryMiB >= 0 else {
            throw invalid("a sub-agent budget cannot be negative")
        }
        for gpus in [request.gpus, spare.gpus] {
            switch gpus {
            case .count(let count): guard count >= 0 else { throw invalid("a GPU count cannot be negative") }
            case .addresses(let addresses):
                guard Set(addresses).count == addresses.count else { throw invalid("GPUs \(addresses) name one twice") }
            }
        }
        if case .addresses(let own) = request.gpus, case .addresses(let spare) = spare.gpus, !Set(own).isDisjoint(with: spare) {
            throw invalid("a GPU cannot be both its own and its sub-agents'")
        }
    }

    private func checkPlace(id: String, parent: String?) throws(LedgerError) {
        guard !id.isEmpty else { throw .invalidRequest(vm: id, why: "a VM needs a name") }
        guard grants[id] == nil else { throw .duplicateID(id) }
        guard let parent else { return }
        guard let parentGrant = grants[parent] else { throw .unknownParent(vm: id, parent: parent) }
        guard depth(of: parent) < maxDepth else { throw .depthExceeded(vm: id, parent: parent, limit: maxDepth) }
        let siblings = children(of: parent)
        guard siblings.count < parentGrant.subAgents.maxCount else {
            throw .fanOutExceeded(vm: id, parent: parent, limit: parentGrant.subAgents.maxCount, children: siblings.map(\.id))
        }
    }

    /// Takes the GPUs asked for out of `free`.
    private func take(_ request: GPURequest, from free: inout [String], vm: String, parent: String?, asked: Int) throws(LedgerError) -> [String] {
        switch request {
        case .count(let count):
            guard count <= free.count else { throw .gpusDoNotFit(vm: vm, under: parent, asked: asked, free: free) }
            let taken = Array(free.prefix(count))
            free.removeFirst(count)
            return taken
        case .addresses(let addresses):
            for address in addresses where !free.contains(address) {
                throw .gpuNotFree(vm: vm, under: parent, address: address, heldBy: holder(gpu: address, under: parent), free: free)
            }
            free.removeAll { addresses.contains($0) }
            return addresses.sorted()
        }
    }

    /// The child of `parent` whose subtree holds the GPU.
    private func holder(gpu: String, under parent: String?) -> String? {
        children(of: parent).first { $0.allGPUs.contains(gpu) }?.id
    }

    /// Checks a fully given grant (a restored one) against what is free where it is carved from.
    private func admit(_ grant: Grant) throws(LedgerError) {
        let id = grant.id
        let parent = grant.parent
        try checkPlace(id: id, parent: parent)
        guard grant.pid > 0 else { throw .invalidRequest(vm: id, why: "pid \(grant.pid) is not a process id") }
        guard !grant.cpus.isEmpty else { throw .invalidRequest(vm: id, why: "holds no CPU") }
        guard grant.memoryMiB >= 1, grant.subAgents.memoryMiB >= 0, grant.subAgents.maxCount >= 0 else {
            throw .invalidRequest(vm: id, why: "holds \(grant.memoryMiB) MiB, with \(grant.subAgents.memoryMiB) MiB for \(grant.subAgents.maxCount) sub-agents")
        }
        let free = try free(under: parent)
        var seen = Set<Int>()
        for cpu in grant.allCPUs {
            guard free.cpus.contains(cpu), seen.insert(cpu).inserted else {
                let holder = seen.contains(cpu) ? id : children(of: parent).first { $0.allCPUs.contains(cpu) }?.id
                throw .cpuNotFree(vm: id, under: parent, cpu: cpu, heldBy: holder)
            }
        }
        guard grant.allMemoryMiB <= free.memoryMiB else {
            throw .memoryDoesNotFit(vm: id, under: parent, own: grant.memoryMiB, forSubAgents: grant.subAgents.memoryMiB, freeMiB: free.memoryMiB)
        }
        guard Set(grant.allGPUs).count == grant.allGPUs.count else { throw .invalidRequest(vm: id, why: "holds a GPU twice") }
        var freeGPUs = free.gpus
        _ = try take(.addresses(grant.allGPUs), from: &freeGPUs, vm: id, parent: parent, asked: grant.allGPUs.count)
    }

    private mutating func insert(_ grant: Grant) {
        var grant = grant
        grant.cpus.sort()
        grant.gpus.sort()
        grant.subAgents.cpus.sort()
        grant.subAgents.gpus.sort()
        grants[grant.id] = grant
        order.append(grant.id)
    }
}
