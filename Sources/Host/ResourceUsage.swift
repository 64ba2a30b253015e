import Glibc
import Ledger

/// A process's figures from /proc.
public enum ProcessFigures {
    /// utime + stime, in clock ticks (proc(5), /proc/PID/stat fields 14 and 15).
    public static func cpuTicks(_ pid: Int32) -> Int? {
        guard let fields = ProcessStat.fields(of: pid), fields.count > 13, let user = Int(fields[11]),
              let system = Int(fields[12]) else { return nil }
        return user + system
    }

    /// VmRSS from /proc/PID/status, in KiB.
    public static func residentKiB(_ pid: Int32) -> Int? {
        guard let status = SmallFiles.read("/proc/\(pid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.dropFirst(6).split(separator: " ").first ?? "")
        }
        return nil
    }
}

extension HostResources {
    /// The ledger as it stands, with each live VMM's CPU use (measured over `sampleMicroseconds`)
    /// and resident memory, and the VMs whose grants were reaped because their VMM is gone.
    /// With no ledger yet, the host's pool with nothing granted.
    public func usage(sampleMicroseconds: UInt32 = 200_000) throws(HostError)
        -> (ledger: ResourceLedger, usage: [String: VMUsage], reaped: [String]) {
        let store = try store()
        let read: (ledger: ResourceLedger, reaped: [String])?
        do { read = try store.read() } catch { throw .failed("resource ledger: \(error)") }
        guard let (ledger, reaped) = read else { return (ResourceLedger(pool: try pool()), [:], []) }
        let grants = ledger.allGrants
        let before = grants.map { ProcessFigures.cpuTicks($0.pid) }
        usleep(sampleMicroseconds)
        let ticksPerSecond = max(Int(sysconf(Int32(_SC_CLK_TCK))), 1)
        var usage: [String: VMUsage] = [:]
        for (index, grant) in grants.enumerated() {
            guard let start = before[index], let end = ProcessFigures.cpuTicks(grant.pid),
                  let rss = ProcessFigures.residentKiB(grant.pid) else { continue }
            let percent = (end - start) * 100 * 1_000_000 / Int(max(sampleMicroseconds, 1)) / ticksPerSecond
            usage[grant.id] = VMUsage(cpuPercent: percent, residentMiB: rss / 1024)
        }
        return (ledger, usage, reaped)
    }
}
