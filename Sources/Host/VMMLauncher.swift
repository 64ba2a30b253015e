import Glibc
import MachineConfig
import POSIX

/// Starts momin-vmm, the process that holds one microVM, in its jail (`VMJail`).
public struct VMMLauncher: Sendable {
    public let environment: HostEnvironment

    public init(_ environment: HostEnvironment) { self.environment = environment }

    /// momin-vmm's command line for `config`, or, in `jail`, momin-jailer's ending with it.
    /// `liveness`: the child watches `Processes.livenessDescriptor` (the jailer when jailed,
    /// else momin-vmm) and stops the VM when it hangs up.
    /// `passing`: how many descriptors the child gets at `Processes.passedDescriptor` (its disks).
    public func arguments(_ config: MachineConfiguration, jail: VMJail?, timeout: Double, reportMemory: Bool = false,
                          newSession: Bool = false, liveness: Bool = false, passing: Int = 0) -> [String] {
        let watcher = liveness ? Processes.livenessDescriptor : nil
        let vmm = VMMArguments.render(jail?.inside ?? config, timeout: timeout > 0 ? timeout : nil, reportMemory: reportMemory,
                                      newSession: newSession, seccomp: environment.seccomp,
                                      livenessFD: jail == nil ? watcher : nil)
        if let jail { return jail.argv(vmm: vmm, livenessFD: watcher, passedFDs: (0..<passing).map(Processes.passedDescriptor)) }
        return [environment.vmm] + vmm
    }

    /// A started momin-vmm, and the end of its liveness pair this process keeps open while the
    /// VM is its own (nil for a detached VM, which outlives its launcher).
    public struct Started: Sendable {
        public let pid: pid_t
        public let liveness: Int32?
    }

    /// Starts momin-vmm (in its jail) as a child, its stdin /dev/null, its stdout and stderr
    /// going to `logFD` (ours when nil), and every signal unblocked whatever our mask is. Unless
    /// `newSession` (a VM that outlives this process), the VM stops when this process dies,
    /// however it dies: it watches the other end of a pair only this process holds.
    /// `disks`: descriptors the VMM gets at `Processes.passedDescriptor(0)` and on, in order
    /// (`config.disks` names them there).
    public func spawn(_ config: MachineConfiguration, jail: VMJail?, timeout: Double, logFD: Int32?,
                      reportMemory: Bool = false, newSession: Bool = false, disks: [Int32] = []) throws(HostError) -> Started {
        let pair = newSession ? nil : try Processes.livenessPair()
        defer { if let pair { close(pair.theirs) } }
        do {
            let argv = arguments(config, jail: jail, timeout: timeout, reportMemory: reportMemory, newSession: newSession,
                                 liveness: pair != nil, passing: disks.count)
            return Started(pid: try Processes.spawn(argv, output: logFD, liveness: pair?.theirs, passing: disks), liveness: pair?.ours)
        } catch {
            if let pair { close(pair.ours) }
            throw error
        }
    }

    /// momin-vmm's own check of the machine, run before anything is set up around a VM: the
    /// kernel and initrd (a bzImage that fits in memory with its initrd and command line), the
    /// vCPU and memory ranges, and the KVM device. A machine it refuses is bad input, with its
    /// one-line reason; a momin-vmm that cannot be run at all is a VM failure.
    public func preflight(_ config: MachineConfiguration) throws(HostError) {
        var pipe: [Int32] = [-1, -1]
        guard Glibc.pipe(&pipe) == 0 else { throw .vmFailed("pipe: \(describeErrno())") }
        _ = fcntl(pipe[0], F_SETFD, FD_CLOEXEC)
        let pid: pid_t
        do {
            pid = try Processes.spawn([environment.vmm] + VMMArguments.render(config, timeout: nil, preflightOnly: true),
                                      output: pipe[1])
        } catch {
            close(pipe[0])
            close(pipe[1])
            throw error
        }
        close(pipe[1])
        let output = (try? FileIO.readAll(pipe[0], limit: 64 << 10)) ?? []
        close(pipe[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = String(decoding: output, as: UTF8.self)
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix(Self.errorPrefix) })
        if status == 0 { return }
        if (status >> 8) & 0xff == 2, status & 0x7f == 0, let line {
            throw .badInput(String(line.dropFirst(Self.errorPrefix.count)))
        }
        let said = text.split(separator: "\n").last.map { ": \($0)" } ?? ""
        throw .vmFailed("\(environment.vmm) --preflight \(Processes.describe(status: status))\(said)")
    }

    static let errorPrefix = "momin-vmm: error: "
}
