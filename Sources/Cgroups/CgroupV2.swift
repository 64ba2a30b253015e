import Glibc
import Ledger
import POSIX

/// What one VM's cgroup allows (Linux Documentation/admin-guide/cgroup-v2.rst).
public struct CgroupLimits: Sendable, Equatable {
    /// cpu.max: at most this many CPUs' worth of time per period.
    public var cpus: Int
    /// memory.max in bytes: guest RAM plus the VMM's own budget; memory.swap.max is 0, so the
    /// bound is real memory, not swap.
    public var memoryBytes: UInt64
    /// pids.max: the VMM's threads (vCPUs, the device loop, the main thread) and a margin.
    public var pids: Int
    /// cpuset.cpus: the host CPUs the ledger assigned, when it did.
    public var cpuSet: [Int]?

    /// The period of cpu.max, in µs (the kernel's default).
    public static let period = 100_000

    public init(cpus: Int, memoryBytes: UInt64, pids: Int, cpuSet: [Int]? = nil) {
        self.cpus = cpus
        self.memoryBytes = memoryBytes
        self.pids = pids
        self.cpuSet = cpuSet
    }

    /// The limits of a VM with `vcpus` and `memoryMiB` of guest RAM: the guest's RAM plus
    /// `overheadMiB` for the VMM (about 10 MiB measured, docs/benchmarks.md), and threads for
    /// the vCPUs plus `threadMargin`.
    public static func forVM(vcpus: Int, memoryMiB: Int, overheadMiB: Int = 64, threadMargin: Int = 16,
                             cpuSet: [Int]? = nil) -> CgroupLimits {
        CgroupLimits(cpus: vcpus, memoryBytes: UInt64(memoryMiB + overheadMiB) << 20, pids: vcpus + threadMargin,
                     cpuSet: cpuSet)
    }

    /// The control files and what each gets, in the order they are written.
    public var files: [(name: String, value: String)] {
        var files: [(String, String)] = [
            ("cpu.max", "\(cpus * Self.period) \(Self.period)"),
            ("memory.max", "\(memoryBytes)"),
            ("memory.swap.max", "0"),
            ("pids.max", "\(pids)"),
        ]
        if let cpuSet { files.append(("cpuset.cpus", CPUList.format(cpuSet))) }
        return files
    }
}

public struct CgroupError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The cgroup v2 hierarchy as momin uses it: one parent (`momin`) under the mount, one child
/// per VM, named by the VM. Only the unified hierarchy (cgroup2) is supported; a host with
/// v1 or hybrid mounts gets an error that says so rather than a VM with no limits.
public struct CgroupV2: Sendable {
    /// Where cgroup2 is mounted.
    public let mount: String
    /// The parent of every VM's cgroup, below `mount`.
    public let parentName: String
    /// Controllers every VM cgroup needs.
    public static let controllers = ["cpu", "memory", "pids", "cpuset"]

    public init(mount: String = "/sys/fs/cgroup", parentName: String = "momin") {
        self.mount = mount
        self.parentName = parentName
    }

    public var parent: String { mount + "/" + parentName }
    public func path(ofVM name: String) -> String { parent + "/" + name }

    /// Checks that `mount` is a cgroup2 root with the controllers, creates the parent and
    /// enables the controllers for its children (cgroup-v2.rst, "Enabling and Disabling").
    public func prepareParent() throws(CgroupError) {
        guard let available = Self.readText(mount + "/cgroup.controllers") else {
            throw CgroupError("cgroup v2 is not mounted at \(mount) (no cgroup.controllers; a v1 or hybrid host "
                              + "cannot bound a VM's memory and CPU this way)")
        }
        let present = Set(available.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        let missing = Self.controllers.filter { !present.contains($0) }
        guard missing.isEmpty else {
            throw CgroupError("cgroup v2 at \(mount) lacks the \(missing.joined(separator: ", ")) controller(s) (it has: \(available.trimmed))")
        }
        try enable(in: mount)
        if mkdir(parent, 0o755) != 0 && errno != EEXIST {
            throw CgroupError("cannot create \(parent): \(String(cString: strerror(errno)))")
        }
        try enable(in: parent)
    }

    /// Creates the VM's cgroup and writes its limits. An existing cgroup of that name (left by a
    /// VM that died) is reused only if it holds no process.
    public func createVM(_ name: String, limits: CgroupLimits) throws(CgroupError) -> String {
        try Self.validate(name)
        let dir = path(ofVM: name)
        if mkdir(dir, 0o755) != 0 {
            guard errno == EEXIST else { throw CgroupError("cannot create \(dir): \(String(cString: strerror(errno)))") }
            if let procs = Self.readText(dir + "/cgroup.procs"), !procs.trimmed.isEmpty {
                throw CgroupError("cgroup \(dir) already holds processes (\(procs.trimmed.split(separator: "\n").joined(separator: " ")))")
            }
        }
        for file in limits.files {
            // memory.swap.max is absent where swap accounting is off: no swap to bound then.
            if file.name == "memory.swap.max" && access(dir + "/" + file.name, F_OK) != 0 { continue }
            try Self.write(dir + "/" + file.name, file.value)
        }
        return dir
    }

    /// Moves a process into the VM's cgroup; its children (and threads) follow it.
    public func attach(pid: pid_t, toVM name: String) throws(CgroupError) {
        try Self.write(path(ofVM: name) + "/cgroup.procs", "\(pid)")
    }

    /// Removes the VM's cgroup once its processes are gone (retried for up to `seconds`: the
    /// kernel frees an exited process's cgroup membership a moment after it is reaped).
    public func removeVM(_ name: String, seconds: Double = 2) throws(CgroupError) {
        let dir = path(ofVM: name)
        var waited = 0.0
        while rmdir(dir) != 0 {
            if errno == ENOENT { return }
            guard errno == EBUSY, waited < seconds else {
                throw CgroupError("cannot remove \(dir): \(String(cString: strerror(errno)))")
            }
            usleep(20_000)
            waited += 0.02
        }
    }

    /// memory.events' `oom_kill` count: how often the kernel killed in this cgroup for memory.
    public func oomKills(ofVM name: String) -> Int? {
        guard let text = Self.readText(path(ofVM: name) + "/memory.events") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return Int(line.dropFirst("oom_kill ".count))
        }
        return nil
    }

    private func enable(in dir: String) throws(CgroupError) {
        let control = dir + "/cgroup.subtree_control"
        let enabled = Set((Self.readText(control) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        let wanted = Self.controllers.filter { !enabled.contains($0) }
        if wanted.isEmpty { return }
        try Self.write(control, wanted.map { "+" + $0 }.joined(separator: " "))
    }

    static func validate(_ name: String) throws(CgroupError) {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), name.utf8.count <= 64 else {
            throw CgroupError("'\(name)' cannot name a cgroup")
        }
    }

    /// A cgroup file's text (they are small: 16 KiB at most is read); nil when it cannot be read.
    static func readText(_ path: String) -> String? {
        (try? FileIO.readFile(path, limit: 16384)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// One write(2) of the whole value: cgroup files take a value per write.
    static func write(_ path: String, _ value: String) throws(CgroupError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CgroupError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else {
            throw CgroupError("cannot write '\(value)' to \(path): \(n < 0 ? String(cString: strerror(errno)) : "short write")")
        }
    }
}

extension String {
    fileprivate var trimmed: String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == " " { s = s.dropLast() }
        return String(s)
    }
}
