import Glibc

/// The last check before execve(2): /proc/self/status (proc(5)) read back inside the jail, so
/// a step that silently did less than asked stops the jailer instead of running half-jailed.
public enum ProcStatus {
    /// What in `status` differs from a fully jailed process running as uid:gid: each a short
    /// phrase ("CapBnd is 000001ffffffffff"); empty when all is as it must be.
    public static func problems(_ status: String, uid: UInt32, gid: UInt32) -> [String] {
        var fields: [Substring: [Substring]] = [:]
        for line in status.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon]] = line[line.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" })
        }
        var problems: [String] = []
        func expect(_ key: Substring, _ wanted: [String], _ show: String) {
            guard let got = fields[key] else { problems.append("no \(key) line"); return }
            if got.map(String.init) != wanted { problems.append("\(key) is \(got.joined(separator: " ")), not \(show)") }
        }
        expect("Uid", Array(repeating: String(uid), count: 4), String(uid))
        expect("Gid", Array(repeating: String(gid), count: 4), String(gid))
        expect("Groups", [], "empty")
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] as [Substring] {
            guard let got = fields[set], got.count == 1 else { problems.append("no \(set) line"); continue }
            if !got[0].allSatisfy({ $0 == "0" }) { problems.append("\(set) is \(got[0])") }
        }
        expect("NoNewPrivs", ["1"], "1")
        return problems
    }

    /// /proc/self/status of the calling process.
    static func read() throws(JailFailure) -> String {
        let fd = try system("open /proc/self/status", { open("/proc/self/status", O_RDONLY | O_CLOEXEC) })
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try system("read /proc/self/status", { Int32(truncatingIfNeeded: Glibc.read(fd, &buffer, buffer.count)) })
            if n == 0 { break }
            bytes += buffer[..<Int(n)]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
