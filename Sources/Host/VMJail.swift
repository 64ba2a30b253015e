import Cgroups
import Glibc
import Jail
import Ledger
import MachineConfig
import POSIX

/// The walls momin puts around every momin-vmm (docs/jailer.md, docs/threat-model.md): the
/// jailer (namespaces, pivot_root into a jail that holds only the VM's files, a uid of its own,
/// rlimits, no capabilities, no_new_privs), a cgroup v2 with the VM's limits, and — inside
/// momin-vmm itself — seccomp per thread. `.unjailed` leaves out the first two, loudly.
public struct VMJail: Sendable {
    /// Whether a VM's momin-vmm runs in a jail (the default) or, for debugging, without one.
    public enum Mode: Sendable, Equatable {
        case jailed
        case unjailed
    }

    /// The jail's name: the VM's, with what a hostname cannot hold replaced.
    public let id: String
    public let uid: UInt32
    /// Host directory for the VM's vsock socket, owned by the jail's uid, seen inside as /run/momin.
    public let socketDirectory: String
    let identities: JailIdentities
    let cgroups: CgroupV2
    /// The configuration momin-vmm gets: the same machine, with paths as the jail shows them.
    public let inside: MachineConfiguration
    let plan: JailPlan
    let environment: HostEnvironment

    /// The jail for VM `vm` in `mode`, with its socket directory; nil (after a loud warning)
    /// when unjailed, when the directory is made here instead.
    public static func make(_ mode: Mode, vm: String, _ config: MachineConfiguration, socketDirectory: String,
                            environment: HostEnvironment) throws(HostError) -> VMJail? {
        guard mode == .unjailed else { return try prepare(vm: vm, config, socketDirectory: socketDirectory, environment: environment) }
        warnUnjailed(environment)
        guard mkdir(socketDirectory, 0o700) == 0 else {
            throw .failed("cannot create \(socketDirectory): \(describeErrno())")
        }
        return nil
    }

    /// Where things appear inside every jail: each of the machine's files at /vm/ROLE
    /// (`MachineFile`), the socket directory, momin-vmm itself.
    static let filesInside = "/vm", socketsInside = "/run/momin", vmmInside = "/bin/momin-vmm"

    static func inside(_ file: MachineFile) -> String { "\(filesInside)/\(file.role)" }

    /// The jail for `vm`, whose vsock socket is to live in `socketDirectory` (made here). The
    /// cgroup gets the VM's vCPUs, RAM plus the VMM's budget, and the granted CPUs.
    static func prepare(vm: String, _ config: MachineConfiguration, socketDirectory: String,
                        environment: HostEnvironment) throws(HostError) -> VMJail {
        guard geteuid() == 0 else {
            throw .badInput("the jail around momin-vmm needs root (namespaces, pivot_root, a uid of its own); "
                            + "run as root, or pass --no-jail for debugging")
        }
        let id = String(vm.map { $0.isASCII && ($0.isLetter || $0.isNumber) || $0 == "-" || $0 == "_" ? $0 : "-" }.prefix(64))
        let base = try environment.makeRuntimeDirectory()
        let identities = try JailIdentities.onThisHost(environment)
        let uid = try identities.claim()
        do throws(HostError) {
            // Every jail mounts its own tmpfs on this one empty directory, each in its own mount
            // namespace: the host side stays empty.
            let root = base + "/jail-root"
            if mkdir(root, 0o755) != 0 && errno != EEXIST {
                throw .failed("cannot create \(root): \(describeErrno())")
            }
            guard mkdir(socketDirectory, 0o700) == 0, chown(socketDirectory, uid, uid) == 0 else {
                throw .failed("cannot make \(socketDirectory) for the VM's uid \(uid): \(describeErrno())")
            }
            var inside = config.relocatingFiles(Self.inside)
            inside.vsock = config.vsock.map { VsockConfiguration(guestCID: $0.guestCID, socketPath: socketsInside + "/vsock.sock") }

            let cgroups = CgroupV2()
            do {
                try cgroups.prepareParent()
                _ = try cgroups.createVM(id, limits: .forVM(vcpus: config.vcpus, memoryMiB: Int(config.memoryMiB),
                                                            cpuSet: config.hostCPUs))
            } catch {
                throw .failed("cannot give VM \(vm) its cgroup: \(error) (or pass --no-jail for debugging)")
            }

            var plan = JailPlan(id: id, root: root, uid: uid, gid: uid, program: vmmInside)
            plan.binds = [
                Bind(source: environment.vmm, destination: vmmInside),
                // momin-vmm links glibc, libstdc++ and libseccomp dynamically.
                Bind(source: "/lib/x86_64-linux-gnu", destination: "/lib/x86_64-linux-gnu"),
                Bind(source: "/lib64", destination: "/lib64"),
            ]
            // The one way files reach momin-vmm (docs/jailer.md): bound here, opened by it at
            // start-up, before its filters go on.
            plan.binds += config.files.map { Bind(source: $0.path, destination: Self.inside($0), writable: $0.writable) }
            plan.binds.append(Bind(source: socketDirectory, destination: socketsInside, writable: true))
            plan.devices = [config.kvmPath]
            plan.limits = [
                ResourceLimit(.nofile, 4096),
                // The console log is the only file momin-vmm writes (on the fd it inherits).
                ResourceLimit(.fsize, 1 << 30),
                ResourceLimit(.nproc, UInt64(config.vcpus + 16)),
                // A crash must not write guest memory to a core file.
                ResourceLimit(.core, 0),
            ]
            plan.cgroup = cgroups.path(ofVM: id)
            return VMJail(id: id, uid: uid, socketDirectory: socketDirectory, identities: identities, cgroups: cgroups,
                          inside: inside, plan: plan, environment: environment)
        } catch {
            identities.release(uid)
            throw error
        }
    }

    /// momin-jailer's command line, ending with momin-vmm's.
    public func argv(vmm arguments: [String], livenessFD: Int32? = nil, passedFDs: [Int32] = []) -> [String] {
        var plan = plan
        plan.arguments = arguments
        plan.livenessFD = livenessFD
        plan.passedFDs = passedFDs
        return [environment.jailer] + JailArguments.render(plan)
    }

    /// The uid stays claimed as long as `pid` (the jailer) lives.
    public func launched(pid: pid_t) {
        identities.hold(uid, by: pid)
    }

    /// After the jailer has exited: its cgroup and uid are free again.
    public func release() {
        do { try cgroups.removeVM(id) } catch { environment.warn("\(error)") }
        identities.release(uid)
    }

    /// What `momin stop` frees once a started VM is gone: its cgroup and uid, from the `jail`
    /// file (`ID UID`) that the launch wrote in its registry directory.
    static func releaseRecorded(in directory: String, environment: HostEnvironment) {
        guard let text = SmallFiles.read(directory + "/jail") else { return }
        let fields = text.trimmingNewline().split(separator: " ")
        guard fields.count == 2, let uid = UInt32(fields[1]) else {
            environment.warn("\(directory)/jail is damaged ('\(text.trimmingNewline())'); its cgroup and uid were not freed")
            return
        }
        do { try CgroupV2().removeVM(String(fields[0])) } catch { environment.warn("\(error)") }
        do { try JailIdentities.onThisHost(environment).release(uid) } catch { environment.warn("\(error)") }
    }

    static func warnUnjailed(_ environment: HostEnvironment) {
        environment.warn("WARNING: --no-jail: momin-vmm runs as root with every capability, in the host's "
                         + "namespaces and cgroup, with only its seccomp filters; for debugging only")
    }
}

/// Unprivileged uids for jails, one per running VM (RLIMIT_NPROC counts per uid, and no two
/// VMMs may signal or ptrace each other): 61000–61999. A claim is a file named by the uid
/// holding the pid that owns it and that process's start time (`PID START`, as the ledger keeps
/// its grants); one whose process is gone is free again, and so is one whose pid now belongs to
/// another process (a pid reused after a crash does not hold the uid).
struct JailIdentities: Sendable {
    let directory: String
    let environment: HostEnvironment
    static let first: UInt32 = 61000, count: UInt32 = 1000

    /// The claims of this host's jails, beside the resource ledger.
    static func onThisHost(_ environment: HostEnvironment) throws(HostError) -> JailIdentities {
        JailIdentities(directory: try environment.makeRuntimeDirectory() + "/uids", environment: environment)
    }

    func claim() throws(HostError) -> UInt32 {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw .failed("cannot create \(directory): \(describeErrno())")
        }
        let lock = open(directory + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw .failed("cannot open \(directory)/.lock: \(describeErrno())") }
        defer { close(lock) }
        _ = retryingEINTR { flock(lock, LOCK_EX) }
        for uid in Self.first..<(Self.first + Self.count) {
            let path = "\(directory)/\(uid)"
            if let text = SmallFiles.read(path) {
                if Self.isHeld(text) { continue }
                unlink(path)
            }
            try SmallFiles.write(path, Self.claim(by: getpid()))
            return uid
        }
        throw .noRoom("no free jail uid: \(Self.count) VMs are running (\(directory))")
    }

    func hold(_ uid: UInt32, by pid: pid_t) {
        do { try SmallFiles.write("\(directory)/\(uid)", Self.claim(by: pid)) } catch { environment.warn("\(error)") }
    }

    /// A claim's text: the pid and its start time (proc(5) `starttime`).
    static func claim(by pid: pid_t) -> String {
        "\(pid) \(ProcessStat.startTime(of: pid) ?? 0)\n"
    }

    /// Whether the claim `text` still has its process: the pid exists and, where a start time
    /// was kept (a claim from before start times holds only the pid), started then.
    static func isHeld(_ text: String) -> Bool {
        let fields = text.trimmingNewline().split(separator: " ")
        guard (1...2).contains(fields.count), let pid = pid_t(fields[0]), pid > 0 else { return false }
        guard LedgerStore.processExists(pid) else { return false }
        guard fields.count == 2 else { return true }
        guard let kept = UInt64(fields[1]), kept != 0 else { return true }
        return ProcessStat.startTime(of: pid) == kept
    }

    func release(_ uid: UInt32) { unlink("\(directory)/\(uid)") }
}
