/// Why the ledger refused a grant, a release or a restored state. Each case reads as a message
/// that says what did not fit and what is free; `under` nil means the host pool.
public enum LedgerError: Error, Equatable, Sendable, CustomStringConvertible {
    case cpusDoNotFit(vm: String, under: String?, own: Int, forSubAgents: Int, free: [Int])
    case memoryDoesNotFit(vm: String, under: String?, own: Int, forSubAgents: Int, freeMiB: Int)
    case gpusDoNotFit(vm: String, under: String?, asked: Int, free: [String])
    /// A GPU asked for by address: held by `heldBy` (the sibling whose subtree has it), or nil
    /// when it is not in the pool at all.
    case gpuNotFree(vm: String, under: String?, address: String, heldBy: String?, free: [String])
    /// A restored grant names a CPU that is not free where it was carved from.
    case cpuNotFree(vm: String, under: String?, cpu: Int, heldBy: String?)
    case duplicateID(String)
    case unknownParent(vm: String, parent: String)
    case unknownVM(String)
    case depthExceeded(vm: String, parent: String, limit: Int)
    case fanOutExceeded(vm: String, parent: String, limit: Int, children: [String])
    case invalidRequest(vm: String, why: String)
    case reserveTooLarge(String)

    public var description: String {
        switch self {
        case .cpusDoNotFit(let vm, let under, let own, let spare, let free):
            "VM \(quoted(vm)) asks for \(split(own + spare, own, spare, unit: "CPU"))\(free.count == 1 ? ", 1 is" : ", \(free.count) are") free"
                + (free.isEmpty ? "" : " (cpus \(CPUList.format(free)))") + " under \(place(under))"
        case .memoryDoesNotFit(let vm, let under, let own, let spare, let free):
            "VM \(quoted(vm)) asks for \(split(own + spare, own, spare, unit: "MiB")), \(free) MiB \(free == 1 ? "is" : "are") free under \(place(under))"
        case .gpusDoNotFit(let vm, let under, let asked, let free):
            "VM \(quoted(vm)) asks for \(plural(asked, "GPU")), \(free.count == 1 ? "1 is" : "\(free.count) are") free"
                + (free.isEmpty ? "" : " (\(free.joined(separator: ", ")))") + " under \(place(under))"
        case .gpuNotFree(let vm, let under, let address, let holder, let free):
            "VM \(quoted(vm)) asks for GPU \(address), which "
                + (holder.map { "\(quoted($0)) holds" } ?? "is not in the pool")
                + " under \(place(under)); free there: \(free.isEmpty ? "none" : free.joined(separator: ", "))"
        case .cpuNotFree(let vm, let under, let cpu, let holder):
            "VM \(quoted(vm)) holds cpu \(cpu), which "
                + (holder.map { "\(quoted($0)) also holds" } ?? "is not in the pool") + " under \(place(under))"
        case .duplicateID(let vm): "VM \(quoted(vm)) already has a grant"
        case .unknownParent(let vm, let parent): "VM \(quoted(vm)) names parent \(quoted(parent)), which has no grant"
        case .unknownVM(let vm): "no grant for VM \(quoted(vm))"
        case .depthExceeded(let vm, let parent, let limit):
            "VM \(quoted(vm)) under \(quoted(parent)) would be \(limit + 1) levels deep; the limit is \(limit)"
        case .fanOutExceeded(let vm, let parent, let limit, let children):
            "VM \(quoted(vm)) is refused: \(quoted(parent)) may have \(plural(limit, "sub-agent")) and has \(children.count)"
                + (children.isEmpty ? "" : " (\(children.map(quoted).joined(separator: ", ")))")
        case .invalidRequest(let vm, let why): "VM \(quoted(vm)): \(why)"
        case .reserveTooLarge(let why): why
        }
    }
}

func quoted(_ name: String) -> String { "\"\(name)\"" }

/// "the host" or "\"a\"".
func place(_ under: String?) -> String { under.map(quoted) ?? "the host" }

func plural(_ count: Int, _ unit: String) -> String { count == 1 ? "1 \(unit)" : "\(count) \(unit)s" }

/// "4 CPUs" or "4 CPUs (2 for itself, 2 for sub-agents)"; MiB is not pluralised.
private func split(_ total: Int, _ own: Int, _ spare: Int, unit: String) -> String {
    let amount = unit == "MiB" ? "\(total) MiB" : plural(total, unit)
    return spare == 0 ? amount : "\(amount) (\(own) for itself, \(spare) for sub-agents)"
}
