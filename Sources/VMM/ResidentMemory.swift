import Glibc

/// The VMM's own resident memory: /proc/self/smaps summed over every mapping except guest RAM,
/// so the figure is what the VMM costs on top of the memory it gives the guest.
public enum ResidentMemory {
    /// Resident KiB of this process outside the `excluded` host address ranges.
    public static func kibExcluding(_ excluded: [Range<UInt>]) -> Int? {
        guard let file = fopen("/proc/self/smaps", "r") else { return nil }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        var counting = true
        var total = 0
        while getline(&line, &capacity, file) > 0 {
            guard let line else { continue }
            let text = String(cString: line)
            if let range = mappingRange(text) {
                counting = !excluded.contains { $0.overlaps(range) }
            } else if counting, text.hasPrefix("Rss:") {
                total += Int(text.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
            }
        }
        return total
    }

    /// "start-end perms ..." header lines of smaps; nil for the per-mapping field lines.
    static func mappingRange(_ line: String) -> Range<UInt>? {
        guard let dash = line.firstIndex(of: "-"), let space = line.firstIndex(of: " "), dash < space,
              let start = UInt(line[..<dash], radix: 16),
              let end = UInt(line[line.index(after: dash)..<space], radix: 16), start < end else { return nil }
        return start..<end
    }
}
