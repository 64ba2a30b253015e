import Agents
import Buckets
import Doors
import Gateway
import Glibc
import POSIX

/// A long-lived VM's agent host (`momin agent-host NAME`, started by `momin start`, detached):
/// serves the hands calls of the VM and of the sub-agents it starts, as a run serves its VM's,
/// until the VM's momin-vmm is gone or SIGTERM; then stops the sub-agents and exits. Its calls
/// count against the VM's persisted limits and go to its shared audit log.
public enum AgentHost {
    /// Serves VM `name` until it stops or a stop signal comes. Blocks SIGINT, SIGTERM and SIGHUP
    /// in the calling thread (call it before starting other threads).
    public static func serve(_ name: String, environment: HostEnvironment) throws(HostError) {
        try VMRegistry.validate(name)
        let registry = try VMRegistry.open(environment)
        guard case .running = registry.state(name) else { throw .badInput("VM \(name) is not running") }
        let dir = registry.directory(name)
        let governance = try VMGovernance.load(from: dir, name: name) ?? VMGovernance(agent: name)
        let settings = try HostSettings.load(from: dir, name: name)
        let store: BucketStore?
        do { store = try settings.buckets.map { path throws(BucketError) in try BucketStore(path: path) } } catch {
            throw .failed("VM \(name): bucket store \(settings.buckets ?? ""): \(error)")
        }
        let requestIDs = governance.requestIDs
        let log = governance.log
        let session = GovernedSession(agent: name, policy: governance.policy?.policy, log: log, resolver: NoGuestPaths(),
                                      limits: governance.limits, requestIDs: requestIDs)
        let wiring = AgentTreeHost.Wiring(root: name, registry: registry, environment: environment, base: settings.configuration,
                                          jail: settings.jail)
        let stops = SignalRelay.blockStopSignals()
        let tree: AgentTree
        do {
            tree = try AgentTreeHost.start(wiring, session: session, store: store, log: log, requestIDs: requestIDs,
                                           budget: governance.budget, disks: VMDisks.held(vm: name, in: dir, warn: environment.warn))
        } catch {
            throw .failed("VM \(name): cannot serve hands calls: \(error)")
        }
        try SmallFiles.write(dir + "/agent-host", "\(getpid())\n")
        // Until the VM is gone, or SIGTERM, SIGINT or SIGHUP.
        var wait = stops
        var pause = timespec(tv_sec: 0, tv_nsec: 500_000_000)
        while case .running = registry.state(name) {
            if sigtimedwait(&wait, nil, &pause) > 0 { break }
        }
        tree.shutDown(root: name, reason: "VM \(name) stopped")
        do { try store?.close() } catch { environment.warn("agent-host: bucket store: \(error)") }
        unlink(dir + "/agent-host")
    }

    /// Starts `momin agent-host NAME` in a session of its own, its output in the VM's
    /// directory, and waits until it serves (its socket is there) or has failed.
    public static func start(_ name: String, registry: VMRegistry, environment: HostEnvironment) throws(HostError) {
        let dir = registry.directory(name)
        let logPath = dir + "/agent-host.log"
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard logFD >= 0 else { throw .vmFailed("cannot open \(logPath): \(describeErrno())") }
        defer { close(logFD) }
        guard let me = environment.momin else { throw .vmFailed("cannot find this momin binary (/proc/self/exe)") }
        let pid = try Processes.spawn([me, "agent-host", name], output: logFD, setsid: true, adding: environment.inheritedSecrets)
        let socket = registry.hostPortSocket(name, port: HandsCallProtocol.port)
        for _ in 0..<100 {
            if access(dir + "/agent-host", F_OK) == 0, access(socket, F_OK) == 0 { return }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                throw .vmFailed("VM \(name): its agent host exited: \(SmallFiles.read(logPath)?.trimmingNewline() ?? "")")
            }
            usleep(50_000)
        }
        kill(pid, SIGKILL)
        throw .vmFailed("VM \(name): its agent host did not come up in 5 s")
    }

    /// Ends the VM's agent host once the VM is stopped: SIGTERM makes it stop its sub-agents
    /// and exit (SIGKILL after 10 s).
    static func awaitExit(in directory: String) {
        guard let text = SmallFiles.read(directory + "/agent-host"), let pid = pid_t(text.trimmingNewline()) else { return }
        guard let cmdline = SmallFiles.read("/proc/\(pid)/cmdline"), cmdline.contains("agent-host") else { return }
        Processes.terminate(pid)
    }
}
