import Egress
import Glibc
import MachineConfig
import POSIX

/// Where this host keeps what every momin on it shares, and which programs it starts: read
/// once from the process environment (`fromProcess`), or made up by a test.
///
/// - `runtimeDirectory`: the resource ledger, the jail uid claims, the jails' empty root, and
///   the directories of VMs that `momin boot` runs: $XDG_RUNTIME_DIR/momin, /run/momin for
///   root, or /tmp/momin-UID (mode 0700).
/// - `registryDirectory`: the named VMs (`VMRegistry`): $MOMIN_RUNTIME_DIR, else
///   $XDG_RUNTIME_DIR/momin/vms, /run/momin/vms for root, or /tmp/momin-UID/vms.
/// - `dataDirectory`: what outlives a VM and the machine's restarts (scratch disks): $MOMIN_DATA,
///   else $XDG_DATA_HOME/momin, else $HOME/.local/share/momin.
/// - `momin`, `vmm`, `jailer`: the programs: this binary; momin-vmm and momin-jailer from
///   $MOMIN_VMM / $MOMIN_JAILER, else next to this binary, else on PATH.
/// - `seccomp`: $MOMIN_SECCOMP (kill, trap, log, off; docs/seccomp.md), default kill.
/// - `reserveCPUs`, `reserveMiB`: what the host keeps for itself ($MOMIN_RESERVE_CPUS, default
///   0; $MOMIN_RESERVE_MIB, default 256).
public struct HostEnvironment: Sendable {
    public var runtimeDirectory: String
    public var registryDirectory: String
    public var dataDirectory = "/var/lib/momin"
    public var momin: String?
    public var vmm: String
    public var jailer: String
    public var seccomp: SeccompMode
    public var reserveCPUs: Int
    public var reserveMiB: Int
    /// A MOMIN_RESERVE_* that is not a count: refused when the host's pool is first needed
    /// (a grant, `momin ps --tree`), not by commands that never look at it (`momin stop`).
    public var invalidReserve: String?
    /// Where the Brain relay's key comes from (docs/brain.md, "The key"): `MOMIN_BRAIN_KEY_FILE`,
    /// else `MOMIN_BRAIN_API_KEY`, which `fromProcess` takes out of this process's environment so
    /// that nothing momin starts (a VMM outside its jail, a tool) inherits it.
    public var brainKeyFile: String?
    public var brainKeyValue: String?
    /// The root of the file system whose /proc and /sys describe the host's resources.
    public var inventoryRoot = "/"
    /// Where the host says what went wrong on the side (a cleanup that failed, a stale VM
    /// cleaned) while it goes on: by default one line `momin: TEXT` on stderr.
    public var warn: @Sendable (String) -> Void = { text in try? FileIO.writeAll(2, Array("momin: \(text)\n".utf8)) }

    public init(runtimeDirectory: String, registryDirectory: String, momin: String?, vmm: String, jailer: String,
                seccomp: SeccompMode = .kill, reserveCPUs: Int = 0, reserveMiB: Int = 256) {
        self.runtimeDirectory = runtimeDirectory
        self.registryDirectory = registryDirectory
        self.momin = momin
        self.vmm = vmm
        self.jailer = jailer
        self.seccomp = seccomp
        self.reserveCPUs = reserveCPUs
        self.reserveMiB = reserveMiB
    }

    /// This process's environment. Makes nothing: the directories are made when first used.
    /// A bad MOMIN_SECCOMP is ignored with a warning (`warnings`), as it is a debugging aid.
    public static func fromProcess(warnings: (String) -> Void = { _ in }) -> HostEnvironment {
        let uid = getuid()
        let runtime: String
        if let dir = variable("XDG_RUNTIME_DIR") { runtime = dir + "/momin" }
        else if uid == 0, access("/run", W_OK) == 0 { runtime = "/run/momin" }
        else { runtime = "/tmp/momin-\(uid)" }
        let registry: String
        if let dir = variable("MOMIN_RUNTIME_DIR") { registry = dir }
        else if let dir = variable("XDG_RUNTIME_DIR") { registry = dir + "/momin/vms" }
        else if uid == 0 { registry = "/run/momin/vms" }
        else { registry = "/tmp/momin-\(uid)/vms" }
        let me = Paths.ownExecutable()
        var seccomp = SeccompMode.kill
        if let text = variable("MOMIN_SECCOMP") {
            if let mode = SeccompMode(rawValue: text) { seccomp = mode }
            else { warnings("MOMIN_SECCOMP=\(text) is not one of kill, trap, log, off; using kill") }
        }
        var environment = HostEnvironment(runtimeDirectory: runtime, registryDirectory: registry, momin: me,
                                          vmm: variable("MOMIN_VMM") ?? sibling("momin-vmm", of: me),
                                          jailer: variable("MOMIN_JAILER") ?? sibling("momin-jailer", of: me),
                                          seccomp: seccomp)
        if let dir = variable("MOMIN_DATA") { environment.dataDirectory = dir }
        else if let dir = variable("XDG_DATA_HOME") { environment.dataDirectory = dir + "/momin" }
        else if let home = variable("HOME") { environment.dataDirectory = home + "/.local/share/momin" }
        environment.brainKeyFile = variable(BrainCredential.fileVariable)
        environment.brainKeyValue = takenBrainKey
        do throws(HostError) {
            environment.reserveCPUs = try count("MOMIN_RESERVE_CPUS") ?? 0
            environment.reserveMiB = try count("MOMIN_RESERVE_MIB") ?? 256
        } catch {
            environment.invalidReserve = error.message
        }
        return environment
    }

    /// The Brain relay's key, read now; nil when the environment names none. A bad key or key
    /// file is an error naming it.
    public func brainCredential() throws(HostError) -> BrainCredential? {
        switch BrainCredential.fromEnvironment(file: brainKeyFile, value: brainKeyValue) {
        case .success(let credential): return credential
        case .failure(let error): throw .badInput("the Brain key: \(error)")
        }
    }

    /// What a process momin starts to act for it (the agent host) needs of the environment on
    /// top of its own: the Brain key taken out of it.
    public var inheritedSecrets: [String] {
        guard let brainKeyValue, brainKeyFile == nil else { return [] }
        return ["\(BrainCredential.valueVariable)=\(brainKeyValue)"]
    }

    /// MOMIN_BRAIN_API_KEY, read and unset the first time any environment is made (static lets
    /// are initialised once, thread-safely): every later `fromProcess` still sees it.
    private static let takenBrainKey: String? = {
        let value = variable(BrainCredential.valueVariable)
        unsetenv(BrainCredential.valueVariable)
        return value
    }()

    private static func variable(_ name: String) -> String? {
        guard let value = getenv(name), value.pointee != 0 else { return nil }
        return String(cString: value)
    }

    private static func count(_ name: String) throws(HostError) -> Int? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        guard let number = Int(text), number >= 0 else { throw .badInput("\(name)=\(text) is not a count (a whole number ≥ 0)") }
        return number
    }

    /// `program` next to `me` when it is there and executable, else the bare name (PATH).
    private static func sibling(_ program: String, of me: String?) -> String {
        if let me, let slash = me.lastIndex(of: "/") {
            let candidate = String(me[..<slash]) + "/" + program
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return program
    }

    /// The shared runtime directory, made (mode 0700) if missing.
    public func makeRuntimeDirectory() throws(HostError) -> String {
        if mkdir(runtimeDirectory, 0o700) != 0 && errno != EEXIST {
            throw .vmFailed("cannot create \(runtimeDirectory): \(describeErrno())")
        }
        return runtimeDirectory
    }
}

/// Paths of this process and of the files it is given.
public enum Paths {
    /// This binary (/proc/self/exe).
    public static func ownExecutable() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, Int(PATH_MAX))
        guard n > 0 else { return nil }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `path` made absolute against the working directory.
    public static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let length = buffer.firstIndex(of: 0) ?? buffer.count
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/" + path
    }
}
