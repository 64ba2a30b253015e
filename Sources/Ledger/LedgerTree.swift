/// Live figures for one VM, shown beside its grant.
public struct VMUsage: Sendable, Equatable {
    /// CPU time over the last interval as a percentage of one CPU (200: two CPUs busy).
    public var cpuPercent: Int
    public var residentMiB: Int

    public init(cpuPercent: Int, residentMiB: Int) {
        self.cpuPercent = cpuPercent
        self.residentMiB = residentMiB
    }
}

/// `momin ps --tree`: the host pool, then each VM under its parent, one line each.
///
///     host  cpus 2-7  15360 MiB  2 GPUs  free: cpus 7, 8704 MiB, 1 GPU
///     ├─ a  pid 101  cpus 2-3  4096 MiB  gpus 0000:41:00.0  sub-agents 1/2 (free: cpus 5, 1024 MiB)
///     │  └─ b  pid 102  cpus 4  1024 MiB  sub-agents 0/0
///     └─ c  pid 103  cpus 6  512 MiB  sub-agents 0/0  using cpu 37%, 400 MiB
///
/// "(free: …)" is what a VM's sub-agent budget still has; it is left out when it has none.
public enum LedgerTree {
    public static func render(_ ledger: ResourceLedger, usage: [String: VMUsage] = [:]) -> String {
        let pool = ledger.pool
        var lines = ["host  cpus \(list(pool.cpus))  \(pool.memoryMiB) MiB  \(plural(pool.gpus.count, "GPU"))  free: "
            + freeText(try? ledger.free(under: nil))]
        func walk(_ parent: String?, prefix: String) {
            let children = ledger.children(of: parent)
            for (index, grant) in children.enumerated() {
                let last = index == children.count - 1
                lines.append(prefix + (last ? "└─ " : "├─ ") + line(grant, ledger: ledger, usage: usage[grant.id]))
                walk(grant.id, prefix: prefix + (last ? "   " : "│  "))
            }
        }
        walk(nil, prefix: "")
        return lines.joined(separator: "\n") + "\n"
    }

    private static func line(_ grant: Grant, ledger: ResourceLedger, usage: VMUsage?) -> String {
        var fields = [grant.id, "pid \(grant.pid)", "cpus \(list(grant.cpus))", "\(grant.memoryMiB) MiB"]
        if !grant.gpus.isEmpty { fields.append("gpus " + grant.gpus.joined(separator: ",")) }
        let budget = grant.subAgents
        var subAgents = "sub-agents \(ledger.children(of: grant.id).count)/\(budget.maxCount)"
        if !budget.cpus.isEmpty || budget.memoryMiB > 0 || !budget.gpus.isEmpty {
            subAgents += " (free: " + freeText(try? ledger.free(under: grant.id)) + ")"
        }
        fields.append(subAgents)
        if let usage { fields.append("using cpu \(usage.cpuPercent)%, \(usage.residentMiB) MiB") }
        return fields.joined(separator: "  ")
    }

    private static func freeText(_ free: FreeResources?) -> String {
        guard let free else { return "?" }
        var parts = [free.cpus.isEmpty ? "no cpus" : "cpus \(list(free.cpus))", "\(free.memoryMiB) MiB"]
        if !free.gpus.isEmpty { parts.append(plural(free.gpus.count, "GPU")) }
        return parts.joined(separator: ", ")
    }

    private static func list(_ cpus: [Int]) -> String { cpus.isEmpty ? "none" : CPUList.format(cpus) }
}
