/// What the ledger may hand out: the host's inventory less what the host keeps for itself.
public struct HostPool: Sendable, Equatable {
    /// CPU ids, sorted.
    public var cpus: [Int]
    public var memoryMiB: Int
    /// GPU PCI addresses, sorted.
    public var gpus: [String]

    public init(cpus: [Int], memoryMiB: Int, gpus: [String]) {
        self.cpus = Set(cpus).sorted()
        self.memoryMiB = memoryMiB
        self.gpus = Set(gpus).sorted()
    }

    /// The inventory less a reserve for the host: its `reserveCPUs` lowest-numbered CPUs (CPU 0
    /// takes most housekeeping interrupts) and `reserveMiB` of memory. Every GPU is in the pool.
    public init(inventory: HostInventory, reserveCPUs: Int, reserveMiB: Int) throws(LedgerError) {
        let cpus = inventory.cpus.sorted()
        guard reserveCPUs >= 0, reserveMiB >= 0 else { throw .reserveTooLarge("a host reserve cannot be negative") }
        guard reserveCPUs < cpus.count else {
            throw .reserveTooLarge("a host reserve of \(reserveCPUs) CPUs leaves none of the \(cpus.count) online (cpus \(CPUList.format(cpus)))")
        }
        guard reserveMiB < inventory.memoryMiB else {
            throw .reserveTooLarge("a host reserve of \(reserveMiB) MiB leaves none of the host's \(inventory.memoryMiB) MiB")
        }
        self.init(cpus: Array(cpus.dropFirst(reserveCPUs)), memoryMiB: inventory.memoryMiB - reserveMiB,
                  gpus: inventory.gpus.map(\.address))
    }
}

/// What one VM holds. Its own VM uses `cpus` (one pinned vCPU thread each), `memoryMiB` and
/// `gpus`; `subAgents` is held on top of that for its sub-agents, whose grants are carved from
/// it. A parent's own share never shrinks when children come and go.
public struct Grant: Sendable, Equatable {
    /// The VM's name.
    public var id: String
    /// The VM whose sub-agent budget this grant was carved from; nil for the host's pool.
    public var parent: String?
    /// The VMM process; the grant (with its subtree) is reaped once it is gone.
    public var pid: Int32
    /// When that process started (/proc/PID/stat field 22, clock ticks since boot): a pid the
    /// kernel has given to another process since does not keep the grant alive. nil: unknown.
    public var pidStart: UInt64?
    /// CPU ids, sorted; as many as the VM has vCPUs.
    public var cpus: [Int]
    public var memoryMiB: Int
    /// PCI addresses, sorted.
    public var gpus: [String]
    public var subAgents: SubAgentBudget

    public init(id: String, parent: String?, pid: Int32, cpus: [Int], memoryMiB: Int, gpus: [String], subAgents: SubAgentBudget) {
        self.id = id
        self.parent = parent
        self.pid = pid
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.gpus = gpus
        self.subAgents = subAgents
    }

    /// Everything the grant takes from its parent: its own share and its sub-agent budget.
    public var allCPUs: [Int] { (cpus + subAgents.cpus).sorted() }
    public var allMemoryMiB: Int { memoryMiB + subAgents.memoryMiB }
    public var allGPUs: [String] { (gpus + subAgents.gpus).sorted() }
}

/// What a VM holds for its sub-agents, on top of its own share.
public struct SubAgentBudget: Sendable, Equatable {
    /// How many direct sub-agents it may have at a time.
    public var maxCount: Int
    public var cpus: [Int]
    public var memoryMiB: Int
    public var gpus: [String]

    public init(maxCount: Int = 0, cpus: [Int] = [], memoryMiB: Int = 0, gpus: [String] = []) {
        self.maxCount = maxCount
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.gpus = gpus
    }

    public static let none = SubAgentBudget()
}

/// What a VM asks for: its own share and, on top, a budget for its sub-agents.
public struct ResourceRequest: Sendable, Equatable {
    /// At least 1.
    public var vcpus: Int
    /// At least 1.
    public var memoryMiB: Int
    public var gpus: GPURequest
    public var subAgents: SubAgentRequest

    public init(vcpus: Int, memoryMiB: Int, gpus: GPURequest = .count(0), subAgents: SubAgentRequest = .none) {
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
        self.gpus = gpus
        self.subAgents = subAgents
    }
}

/// The sub-agent part of a request: how many children at a time, and what they may share.
public struct SubAgentRequest: Sendable, Equatable {
    public var maxCount: Int
    public var cpus: Int
    public var memoryMiB: Int
    public var gpus: GPURequest

    public init(maxCount: Int, cpus: Int = 0, memoryMiB: Int = 0, gpus: GPURequest = .count(0)) {
        self.maxCount = maxCount
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.gpus = gpus
    }

    public static let none = SubAgentRequest(maxCount: 0)
}

public enum GPURequest: Sendable, Equatable {
    /// Any free GPUs, lowest addresses first.
    case count(Int)
    /// These PCI addresses, each free.
    case addresses([String])

    var count: Int {
        switch self {
        case .count(let count): count
        case .addresses(let addresses): addresses.count
        }
    }
}

/// What is free under the host pool or under one VM's sub-agent budget.
public struct FreeResources: Sendable, Equatable {
    public var cpus: [Int]
    public var memoryMiB: Int
    public var gpus: [String]
    /// How many more sub-agents the VM may have; nil under the host pool (no limit).
    public var slots: Int?

    public init(cpus: [Int], memoryMiB: Int, gpus: [String], slots: Int?) {
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.gpus = gpus
        self.slots = slots
    }
}
