import Cgroups
import Glibc
import Jail
import Ledger
import VMM

/// The walls momin puts around every momin-vmm (docs/jailer.md, docs/threat-model.md): the
/// jailer (namespaces, pivot_root into a jail that holds only the VM's files, a uid of its own,
/// rlimits, no capabilities, no_new_privs), a cgroup v2 with the VM's limits, and — inside
/// momin-vmm itself — seccomp per thread. `--no-jail` leaves out the first two, loudly.
struct VMJail {
    /// The jail's name: the VM's, with what a hostname cannot hold replaced.
    let id: String
    let uid: UInt32
    /// Host directory for the VM's vsock socket, owned by the jail's uid, seen inside as /run/momin.
    let socketDirectory: String
    let identities: JailIdentities
    let cgroups: CgroupV2
    /// The configuration momin-vmm gets: the same machine, with paths as the jail shows them.
    let inside: MachineConfiguration
    let plan: JailPlan

    /// The jail for VM `vm`, with its socket directory; nil (after a loud warning) with
    /// `noJail`, when the directory is made here instead.
    static func make(noJail: Bool, vm: String, _ config: MachineConfiguration, socketDirectory: String) throws -> VMJail? {
        guard noJail else { return try prepare(vm: vm, config, socketDirectory: socketDirectory) }
        warnUnjailed()
        guard mkdir(socketDirectory, 0o700) == 0 else {
            throw CLIError(message: "cannot create \(socketDirectory): \(String(cString: strerror(errno)))", code: 1)
        }
        return nil
    }

    /// Where files appear inside every jail.
    static let kernelInside = "/vm/kernel", initrdInside = "/vm/initrd", socketsInside = "/run/momin", vmmInside = "/bin/momin-vmm"

    /// The jail for `vm`, whose vsock socket is to live in `socketDirectory` (made here). The
    /// cgroup gets the VM's vCPUs, RAM plus the VMM's budget, and the granted CPUs.
    static func prepare(vm: String, _ config: MachineConfiguration, socketDirectory: String) throws -> VMJail {
        guard geteuid() == 0 else {
            throw CLIError.usage("the jail around momin-vmm needs root (namespaces, pivot_root, a uid of its own); "
                                 + "run as root, or pass --no-jail for debugging")
        }
        let id = String(vm.map { $0.isASCII && ($0.isLetter || $0.isNumber) || $0 == "-" || $0 == "_" ? $0 : "-" }.prefix(64))
        let base = try RuntimeDirectory.base()
        let identities = try JailIdentities.onThisHost()
        let uid = try identities.claim()
        do {
            // Every jail mounts its own tmpfs on this one empty directory, each in its own mount
            // namespace: the host side stays empty.
            let root = base + "/jail-root"
            if mkdir(root, 0o755) != 0 && errno != EEXIST {
                throw CLIError(message: "cannot create \(root): \(String(cString: strerror(errno)))", code: 1)
            }
            guard mkdir(socketDirectory, 0o700) == 0, chown(socketDirectory, uid, uid) == 0 else {
                throw CLIError(message: "cannot make \(socketDirectory) for the VM's uid \(uid): \(String(cString: strerror(errno)))", code: 1)
            }
            var inside = config
            inside.kernelPath = kernelInside
            inside.initrdPath = config.initrdPath.map { _ in initrdInside }
            inside.vsock = config.vsock.map { VsockConfiguration(guestCID: $0.guestCID, socketPath: socketsInside + "/vsock.sock") }

            let cgroups = CgroupV2()
            do {
                try cgroups.prepareParent()
                _ = try cgroups.createVM(id, limits: .forVM(vcpus: config.vcpus, memoryMiB: Int(config.memoryMiB),
                                                            cpuSet: config.hostCPUs))
            } catch {
                throw CLIError(message: "cannot give VM \(vm) its cgroup: \(error) (or pass --no-jail for debugging)", code: 1)
            }

            var plan = JailPlan(id: id, root: root, uid: uid, gid: uid, program: vmmInside)
            plan.binds = [
                Bind(source: VMMLauncher.executable(), destination: vmmInside),
                // momin-vmm links glibc, libstdc++ and libseccomp dynamically.
                Bind(source: "/lib/x86_64-linux-gnu", destination: "/lib/x86_64-linux-gnu"),
                Bind(source: "/lib64", destination: "/lib64"),
                Bind(source: config.kernelPath, destination: kernelInside),
            ]
            if let initrd = config.initrdPath { plan.binds.append(Bind(source: initrd, destination: initrdInside)) }
            plan.binds.append(Bind(source: socketDirectory, destination: socketsInside, writable: true))
            plan.devices = [config.kvmPath]
            plan.limits = [
                ResourceLimit(.nofile, 4096),
                // The console log is the only file momin-vmm writes (on the fd it inherits).
                ResourceLimit(.fsize, 1 << 30),
                ResourceLimit(.nproc, UInt64(config.vcpus + 16)),
            ]
            plan.cgroup = cgroups.path(ofVM: id)
            return VMJail(id: id, uid: uid, socketDirectory: socketDirectory, identities: identities, cgroups: cgroups,
                          inside: inside, plan: plan)
        } catch {
            identities.release(uid)
            throw error
        }
    }

    /// momin-jailer's command line, ending with momin-vmm's.
    func argv(vmm arguments: [String]) -> [String] {
        var plan = plan
        plan.arguments = arguments
        return [Self.jailerExecutable()] + JailArguments.render(plan)
    }

    /// The uid stays claimed as long as `pid` (the jailer) lives.
    func launched(pid: pid_t) {
        identities.hold(uid, by: pid)
    }

    /// After the jailer has exited: its cgroup and uid are free again.
    func release() {
        do { try cgroups.removeVM(id) } catch { writeStandardError("momin: \(error)\n") }
        identities.release(uid)
    }

    /// What `momin stop` frees once a started VM is gone: its cgroup and uid, from the `jail`
    /// file (`ID UID`) that `momin start` wrote in its registry directory.
    static func releaseRecorded(in directory: String) {
        guard let text = readSmallFile(directory + "/jail") else { return }
        let fields = text.trimmingNewline().split(separator: " ")
        guard fields.count == 2, let uid = UInt32(fields[1]) else {
            writeStandardError("momin: \(directory)/jail is damaged ('\(text.trimmingNewline())'); its cgroup and uid were not freed\n")
            return
        }
        do { try CgroupV2().removeVM(String(fields[0])) } catch { writeStandardError("momin: \(error)\n") }
        do { try JailIdentities.onThisHost().release(uid) } catch { writeStandardError("momin: \(error)\n") }
    }

    /// momin-jailer, next to this binary (or $MOMIN_JAILER, or on PATH).
    static func jailerExecutable() -> String {
        if let env = getenv("MOMIN_JAILER"), env.pointee != 0 { return String(cString: env) }
        if let me = Rig.selfPath(), let slash = me.lastIndex(of: "/") {
            let sibling = String(me[..<slash]) + "/momin-jailer"
            if access(sibling, X_OK) == 0 { return sibling }
        }
        return "momin-jailer"
    }

    static func warnUnjailed() {
        writeStandardError("momin: WARNING: --no-jail: momin-vmm runs as root with every capability, in the host's "
                           + "namespaces and cgroup, with only its seccomp filters; for debugging only\n")
    }
}

/// Unprivileged uids for jails, one per running VM (RLIMIT_NPROC counts per uid, and no two
/// VMMs may signal or ptrace each other): 61000–61999. A claim is a file named by the uid
/// holding the pid that owns it; one whose pid is gone is free again.
struct JailIdentities {
    let directory: String
    static let first: UInt32 = 61000, count: UInt32 = 1000

    /// The claims of this host's jails, beside the resource ledger.
    static func onThisHost() throws -> JailIdentities {
        JailIdentities(directory: try RuntimeDirectory.base() + "/uids")
    }

    func claim() throws -> UInt32 {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw CLIError(message: "cannot create \(directory): \(String(cString: strerror(errno)))", code: 1)
        }
        let lock = open(directory + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw CLIError(message: "cannot open \(directory)/.lock: \(String(cString: strerror(errno)))", code: 1) }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 && errno == EINTR {}
        for uid in Self.first..<(Self.first + Self.count) {
            let path = "\(directory)/\(uid)"
            if let owner = readSmallFile(path).flatMap({ pid_t($0.trimmingNewline()) }) {
                if LedgerStore.processExists(owner) { continue }
                unlink(path)
            }
            try writeSmallFile(path, "\(getpid())\n")
            return uid
        }
        throw CLIError(message: "no free jail uid: \(Self.count) VMs are running (\(directory))", code: HostResources.noRoom)
    }

    func hold(_ uid: UInt32, by pid: pid_t) {
        do { try writeSmallFile("\(directory)/\(uid)", "\(pid)\n") } catch {
            writeStandardError("momin: \(error)\n")
        }
    }

    func release(_ uid: UInt32) { unlink("\(directory)/\(uid)") }
}
