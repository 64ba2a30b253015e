import Agents
import Doors
import Glibc
import Ledger
import POSIX

/// Named microVMs: one directory each under the registry directory, holding the momin-vmm pid,
/// its vsock socket, its console log and what it was started with. A VM whose momin-vmm is
/// gone (crashed, killed) leaves a stale directory, which is detected and cleaned.
public struct VMRegistry: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    /// The registry `environment` names, its directory made (mode 0700) if missing.
    public static func open(_ environment: HostEnvironment) throws(HostError) -> VMRegistry {
        try makeDirectories(environment.registryDirectory)
        return VMRegistry(root: environment.registryDirectory)
    }

    static func makeDirectories(_ path: String) throws(HostError) {
        var partial = ""
        for component in path.split(separator: "/") {
            partial += "/" + component
            if mkdir(partial, 0o700) != 0 && errno != EEXIST {
                throw .failed("cannot create \(partial): \(describeErrno())")
            }
        }
    }

    /// Names are what a directory entry and a log line can hold safely.
    public static func validate(_ name: String) throws(HostError) {
        let allowed = name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f || c == 0x2e
        }
        guard !name.isEmpty, name.utf8.count <= 64, allowed, name.first != ".", name.first != "-" else {
            throw .badInput("VM name '\(name)' is invalid: use 1–64 letters, digits, '.', '_' or '-', not starting with '.' or '-'")
        }
    }

    public func directory(_ name: String) -> String { root + "/" + name }
    /// Where the VM's vsock socket lives: a directory of its own, which its jail sees as /run/momin.
    public func socketDirectory(_ name: String) -> String { directory(name) + "/sock" }
    public func socketPath(_ name: String) -> String { socketDirectory(name) + "/vsock.sock" }
    /// Where momin-init's guest-initiated connections to host port `port` arrive (docs/vsock.md).
    public func hostPortSocket(_ name: String, port: UInt32) -> String { socketPath(name) + "_\(port)" }
    public func logPath(_ name: String) -> String { directory(name) + "/console.log" }
    /// Where the VM's hands calls arrive (momin-init's relay, through the VMM's host-port
    /// socket), made in the VM's own directory, which only the host writes, then moved there.
    public func handsSocket(_ name: String) -> HandsSocketPlace {
        HandsSocketPlace(path: hostPortSocket(name, port: HandsCallProtocol.port), staging: directory(name))
    }

    /// `starting`: its directory exists but momin-vmm's pid is not recorded yet, and the
    /// process launching it is alive (`launching`): not stale, whoever looks meanwhile.
    public enum State: Equatable, Sendable { case running(pid: pid_t), starting(launcher: pid_t), stale(String), absent }

    /// Where a launch says who is launching `name`, written before its directory exists and
    /// removed once momin-vmm's pid is recorded (or the launch gave up): a hidden file beside the
    /// VMs' directories (names never start with a dot), so no look at the registry can catch a
    /// directory whose launcher it cannot see.
    public func launchingPath(_ name: String) -> String { root + "/.launching-" + name }

    /// Marks `name` as being launched by this process (its pid and start time, so a reused pid is
    /// not taken for it).
    public func markLaunching(_ name: String) throws(HostError) {
        let pid = getpid()
        try SmallFiles.write(launchingPath(name), "\(pid) \(ProcessStat.startTime(of: pid) ?? 0)\n")
    }

    public func clearLaunching(_ name: String) { unlink(launchingPath(name)) }

    /// The live process launching `name`, or nil.
    func launcher(of name: String) -> pid_t? {
        guard let fields = SmallFiles.read(launchingPath(name))?.trimmingNewline().split(separator: " "), fields.count == 2,
              let pid = pid_t(fields[0]), let start = UInt64(fields[1]), start != 0,
              ProcessStat.startTime(of: pid) == start else { return nil }
        return pid
    }

    /// Running only if the recorded pid is alive and is this VM's momin-vmm or jailer (its
    /// command line names this VM's socket or socket directory), so a reused pid is not mistaken
    /// for the VM.
    public func state(_ name: String) -> State {
        guard access(directory(name), F_OK) == 0 else { return .absent }
        guard let text = SmallFiles.read(directory(name) + "/pid"), let pid = pid_t(text.trimmingNewline()) else {
            if let launcher = launcher(of: name) { return .starting(launcher: launcher) }
            return .stale("no pid recorded")
        }
        guard let cmdline = SmallFiles.read("/proc/\(pid)/cmdline") else { return .stale("momin-vmm (pid \(pid)) is gone") }
        let args = cmdline.split(separator: "\0").map(String.init)
        let vmm = args.first.map({ $0.hasSuffix("momin-vmm") }) == true && args.contains(socketPath(name))
        let jailer = args.first.map({ $0.hasSuffix("momin-jailer") }) == true
            && args.contains(where: { $0.hasPrefix(socketDirectory(name) + ":") })
        guard vmm || jailer else {
            return .stale("pid \(pid) is no longer its momin-vmm")
        }
        return .running(pid: pid)
    }

    public func names() -> [String] { ((try? FileIO.listDirectory(root)) ?? []).filter { !$0.hasPrefix(".") } }

    /// Removes a VM's directory and what is in it.
    public func remove(_ name: String) {
        RuntimeDirectory(path: directory(name)).remove()
        clearLaunching(name)
    }

    /// The VM a sub-agent was started under (its `parent` file), or nil.
    public func parent(of name: String) -> String? { SmallFiles.read(directory(name) + "/parent")?.trimmingNewline() }

    /// Every VM under `name`, each after its own descendants: the order to stop them in.
    public func descendants(of name: String) -> [String] {
        let parents = Dictionary(uniqueKeysWithValues: names().map { ($0, parent(of: $0)) })
        var order: [String] = []
        func visit(_ vm: String) {
            for child in parents.keys.sorted() where parents[child] == vm {
                visit(child)
                order.append(child)
            }
        }
        visit(name)
        return order
    }

    /// What `momin ps` shows of a VM: its vCPUs and memory ("VCPUS MIB"), as launched.
    public func info(_ name: String) -> String { SmallFiles.read(directory(name) + "/info")?.trimmingNewline() ?? "" }
}
