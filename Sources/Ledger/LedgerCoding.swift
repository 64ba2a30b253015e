/// The ledger file's JSON (docs/ledger.md): the pool and the grants, parents first, CPU sets
/// written as cpulists.
extension ResourceLedger {
    public static let fileVersion = 1

    /// The document text: two-space indented, ending in a newline.
    public func encoded() -> String {
        func budget(_ budget: SubAgentBudget) -> JSON {
            .object([("max", .int(budget.maxCount)), ("cpus", .string(CPUList.format(budget.cpus))),
                     ("memory_mib", .int(budget.memoryMiB)), ("gpus", .array(budget.gpus.map(JSON.string)))])
        }
        let grants: [JSON] = allGrants.map { grant in
            .object([
                ("id", .string(grant.id)), ("parent", grant.parent.map(JSON.string) ?? .null), ("pid", .int(Int(grant.pid))),
                ("pid_start", grant.pidStart.map { .int(Int(clamping: $0)) } ?? .null),
                ("cpus", .string(CPUList.format(grant.cpus))), ("memory_mib", .int(grant.memoryMiB)),
                ("gpus", .array(grant.gpus.map(JSON.string))), ("sub_agents", budget(grant.subAgents)),
            ])
        }
        return JSON.object([
            ("version", .int(Self.fileVersion)),
            ("pool", .object([("cpus", .string(CPUList.format(pool.cpus))), ("memory_mib", .int(pool.memoryMiB)),
                              ("gpus", .array(pool.gpus.map(JSON.string)))])),
            ("grants", .array(grants)),
        ]).rendered()
    }

    /// Reads a document `encoded()` wrote, checking every grant against the pool and its
    /// parent as if granted anew. The error names the field (`grants[1].cpus`) and what is wrong.
    public static func decode(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(LedgerDecodingError) -> ResourceLedger {
        let document: JSON
        do { document = try JSON.parse(bytes) } catch { throw LedgerDecodingError(field: "", why: error.description) }
        let top = try Fields(document, at: "", keys: ["version", "pool", "grants"])
        let version = try top.int("version")
        guard version == fileVersion else {
            throw LedgerDecodingError(field: "version", why: "version \(version) is not one this build reads (\(fileVersion))")
        }
        let poolFields = try Fields(try top.value("pool"), at: "pool", keys: ["cpus", "memory_mib", "gpus"])
        let pool = HostPool(cpus: try poolFields.cpus("cpus"), memoryMiB: try poolFields.int("memory_mib"), gpus: try poolFields.strings("gpus"))
        var grants: [Grant] = []
        for (index, item) in try top.array("grants").enumerated() {
            let field = "grants[\(index)]"
            let fields = try Fields(item, at: field, keys: ["id", "parent", "pid", "pid_start", "cpus", "memory_mib", "gpus", "sub_agents"])
            let spare = try Fields(try fields.value("sub_agents"), at: field + ".sub_agents", keys: ["max", "cpus", "memory_mib", "gpus"])
            let pid = try fields.int("pid")
            guard pid > 0, pid <= Int(Int32.max) else { throw LedgerDecodingError(field: field + ".pid", why: "\(pid) is not a process id") }
            var grant = Grant(
                id: try fields.string("id"), parent: try fields.optionalString("parent"), pid: Int32(pid),
                cpus: try fields.cpus("cpus"), memoryMiB: try fields.int("memory_mib"), gpus: try fields.strings("gpus"),
                subAgents: SubAgentBudget(maxCount: try spare.int("max"), cpus: try spare.cpus("cpus"),
                                          memoryMiB: try spare.int("memory_mib"), gpus: try spare.strings("gpus")))
            // Absent or null in files written before it was kept.
            if let start = fields.members.first(where: { $0.0 == "pid_start" })?.1, start != .null {
                guard case .int(let value) = start, value >= 0 else {
                    throw LedgerDecodingError(field: field + ".pid_start", why: "expected a whole number ≥ 0 or null")
                }
                grant.pidStart = UInt64(value)
            }
            grants.append(grant)
        }
        do {
            return try ResourceLedger(pool: pool, maxDepth: maxDepth, grants: grants)
        } catch {
            throw LedgerDecodingError(field: "grants", why: error.description)
        }
    }
}

/// Where a ledger document is wrong: the field ("grants[1].cpus"; empty for the document) and why.
public struct LedgerDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    public let field: String
    public let why: String
    public var description: String { field.isEmpty ? why : "\(field): \(why)" }
}

/// One JSON object's members, read by name; members not in `keys` are refused.
private struct Fields {
    let members: [(String, JSON)]
    let path: String

    init(_ value: JSON, at path: String, keys: [String]) throws(LedgerDecodingError) {
        guard case .object(let members) = value else { throw LedgerDecodingError(field: path, why: "expected an object") }
        for (key, _) in members where !keys.contains(key) {
            throw LedgerDecodingError(field: path, why: "unknown member \"\(key)\"")
        }
        self.members = members
        self.path = path
    }

    func failure(_ key: String, _ why: String) -> LedgerDecodingError {
        LedgerDecodingError(field: path.isEmpty ? key : "\(path).\(key)", why: why)
    }

    func value(_ key: String) throws(LedgerDecodingError) -> JSON {
        guard let value = members.first(where: { $0.0 == key })?.1 else { throw failure(key, "missing") }
        return value
    }

    func int(_ key: String) throws(LedgerDecodingError) -> Int {
        guard case .int(let value) = try value(key), value >= 0 else { throw failure(key, "expected a whole number ≥ 0") }
        return value
    }

    func string(_ key: String) throws(LedgerDecodingError) -> String {
        guard case .string(let value) = try value(key) else { throw failure(key, "expected a string") }
        return value
    }

    func optionalString(_ key: String) throws(LedgerDecodingError) -> String? {
        switch try value(key) {
        case .null: return nil
        case .string(let value): return value
        default: throw failure(key, "expected a string or null")
        }
    }

    func array(_ key: String) throws(LedgerDecodingError) -> [JSON] {
        guard case .array(let items) = try value(key) else { throw failure(key, "expected an array") }
        return items
    }

    func strings(_ key: String) throws(LedgerDecodingError) -> [String] {
        var out: [String] = []
        for item in try array(key) {
            guard case .string(let text) = item else { throw failure(key, "expected an array of strings") }
            out.append(text)
        }
        return out
    }

    func cpus(_ key: String) throws(LedgerDecodingError) -> [Int] {
        let text = try string(key)
        do { return try CPUList.parse(text) } catch { throw failure(key, error.description) }
    }
}
