import Glibc
import MachineConfig

/// A VM in the foreground (`momin boot`): no name in the registry, its console on our stdout,
/// the signals that would stop us passed on to it, and its grant and jail held by this process
/// and given back when it ends.
public enum ForegroundVM {
    /// Boots `config` with `disks` (opened by `AttachedDisk.openAll`; momin-vmm gets their
    /// descriptors) and waits for its momin-vmm to end; its wait status. Blocks SIGINT, SIGTERM
    /// and SIGHUP in the calling thread (they go to the VM).
    public static func run(_ config: MachineConfiguration, disks: [AttachedDisk] = [], overlaySize: String? = nil,
                           jail mode: VMJail.Mode, timeout: Double, reportMemory: Bool,
                           environment: HostEnvironment) throws(HostError) -> Int32 {
        let runtime = try RuntimeDirectory.create(in: environment)
        runtime.removeAtExit()
        let name = runtime.path.split(separator: "/").last.map(String.init) ?? "boot"
        let resources = HostResources(environment)
        var config = config
        config.disks = AttachedDisk.configurations(disks)
        let words = AttachedDisk.commandLineWords(disks, overlaySize: overlaySize)
        if !words.isEmpty { config.commandLine += " " + words.joined(separator: " ") }
        config.hostCPUs = try resources.grant(id: name, config).cpus
        let jail: VMJail?
        do { jail = try VMJail.make(mode, vm: name, config, socketDirectory: runtime.path + "/sock", environment: environment) } catch {
            resources.release(id: name)
            throw error
        }
        let stopping = SignalRelay.blockStopSignals()
        let started: VMMLauncher.Started
        do throws(HostError) {
            started = try VMMLauncher(environment).spawn(config, jail: jail, timeout: timeout, logFD: nil, reportMemory: reportMemory,
                                                       disks: disks.map(\.fd))
        } catch {
            jail?.release()
            resources.release(id: name)
            throw error
        }
        // Open until the VM has ended: if this process is killed, the VM stops with it.
        defer { if let liveness = started.liveness { close(liveness) } }
        let child = started.pid
        jail?.launched(pid: child)
        try? resources.launched(id: name, pid: child)
        let status = SignalRelay.wait(for: child, relaying: stopping)
        jail?.release()
        resources.release(id: name)
        return status
    }
}
