import CLinux
import Devices
import Glibc
import MachineConfig
import POSIX
import Seccomp

/// The body of `momin-vmm`: one microVM in the foreground. Console on stdout; `vmm-setup` and
/// `boot-complete` lines on stderr; SIGTERM, SIGINT or SIGHUP stop the guest cleanly.
/// Returns the exit status: 0 when the guest powered off, rebooted or was stopped, 1 when it
/// died or timed out, 2 on bad input.
public enum VMMProcess {
    public static func run(_ arguments: VMMArguments) -> Int32 {
        if arguments.preflightOnly { return preflight(arguments.configuration) }
        // Guest memory lives in this process: no core file of it, and no other process of the
        // same uid may read or trace it (another VMM, were uids ever shared).
        guard clinux_make_undumpable() == 0 else { return fail("cannot make the VMM undumpable: \(describeErrno())", 1) }
        if arguments.newSession { _ = setsid() }
        let config = arguments.configuration
        // Seccomp first: a profile that does not build stops start-up before anything exists.
        var confinement = Confinement(mode: arguments.seccomp, reportsMemory: arguments.reportMemory)
        confinement.malformedForTesting = arguments.seccompMalformedForTesting
        do { try confinement.validate() } catch { return fail(error.description, 1) }
        switch arguments.seccomp {
        case .off:
            report("momin-vmm: WARNING: seccomp is OFF (--seccomp off): every VMM thread may make any syscall; "
                   + "a guest that breaks a device can reach the host. Use only to debug.")
        case .trap: SeccompTrap.installHandler(prefix: "momin-vmm: seccomp: thread ")
        case .kill, .log: break
        }
        let payload: BootPayload
        do { payload = try Preflight.check(config) } catch { return fail(error.description, 2) }

        // Termination signals go to one watcher thread, never to a vCPU thread: block them here,
        // before any thread exists, so every thread inherits the mask.
        // SIGUSR1 too: it asks for the devices' state (below).
        var watched = sigset_t()
        sigemptyset(&watched)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGIO] { sigaddset(&watched, s) }
        pthread_sigmask(SIG_BLOCK, &watched, nil)
        // The launcher's liveness pipe: its hang-up (SIGIO) stops the VM as SIGTERM would, so a
        // launcher killed with SIGKILL leaves no VM running. Set up before any filter.
        if let fd = arguments.livenessFD {
            guard clinux_signal_on_hangup(fd) == 0 else { return fail("--liveness-fd \(fd): \(describeErrno())", 2) }
            if clinux_has_hung_up(fd) == 1 { return fail("the launcher is already gone (its liveness pipe hung up)", 1) }
        }

        let holder = MachineHolder()
        let machine: Machine
        do {
            machine = try Machine(config, payload: payload, observer: MachineObserver(
                // Bounded in size and rate: a guest that writes without end fills no disk.
                console: BoundedConsole(FileDescriptorOutput(fd: 1)),
                bootComplete: { us in
                    report("boot-complete \(us) us")
                    if arguments.reportMemory, let kib = holder.machine?.vmmResidentKiB() {
                        report("vmm-rss-excluding-guest-kib: \(kib)")
                    }
                },
                firstEntry: { us in report("vmm-setup \(us) us") }))
        } catch {
            return fail(error.description, error.isUsageError ? 2 : 1)
        }
        holder.machine = machine

        // SIGUSR1 prints the devices' state to stderr (the console log of `momin start`) and
        // the VM goes on: how to see why a guest stopped answering.
        let watcherSet = watched
        let watcherFilter: ThreadFilter?, mainFilter: ThreadFilter?
        do {
            watcherFilter = try confinement.prepare(.main)
            mainFilter = try confinement.prepare(.main)
        } catch { return fail(error.description, 1) }
        _ = try? POSIXThread.vmm("signals") {
            // The watcher needs a subset of the main thread's syscalls (sigwait, stderr, the stop).
            do throws(SeccompError) { try watcherFilter?.install() } catch {
                report("momin-vmm: error: signal watcher: \(error)")
                holder.machine?.requestStop()
                return
            }
            var set = watcherSet
            var signal: Int32 = 0
            while sigwait(&set, &signal) == 0 {
                guard signal == SIGUSR1 else {
                    if signal == SIGIO { report("momin-vmm: the launcher is gone (its liveness pipe hung up): stopping the guest") }
                    holder.machine?.requestStop()
                    return
                }
                let lines = holder.machine?.diagnostics() ?? []
                report((["momin-vmm: state on SIGUSR1:"] + lines.map { "  " + $0 }).joined(separator: "\n"))
            }
        }
        do { try machine.start(confinement: confinement) } catch { return fail(error.description, 1) }
        // Last, the main thread itself: it creates no threads after this. Only then does any
        // vCPU enter the guest.
        do { try mainFilter?.install() } catch {
            _ = machine.stop()
            return fail(error.description, 1)
        }
        machine.release()
        let exit = machine.wait(timeoutSeconds: arguments.timeout)
        if !machine.stuckVCPUs.isEmpty {
            // Returning would run deinits that wait on those threads; leave at once.
            report("momin-vmm: error: \(exit.description); vCPU \(machine.stuckVCPUs.map(String.init).joined(separator: ", ")) "
                   + "did not leave KVM_RUN within \(Machine.stopWaitSeconds) s of being stopped")
            _exit(1)
        }
        return exit.isClean ? 0 : fail(exit.description, 1)
    }

    /// `--preflight`: what a boot would check before taking anything (the kernel and initrd,
    /// memory and vCPUs, the KVM device), and nothing else. 0, or 2 with the reason.
    static func preflight(_ config: MachineConfiguration) -> Int32 {
        do {
            _ = try Preflight.check(config)
            try Preflight.checkKVMDevice(config.kvmPath)
        } catch { return fail(error.description, 2) }
        return 0
    }

    static func report(_ line: String) { FileDescriptorOutput(fd: 2).write(Array((line + "\n").utf8)) }

    static func fail(_ message: String, _ code: Int32) -> Int32 {
        report("momin-vmm: error: \(message)")
        return code
    }
}

/// Lets hooks made before the machine exists reach it once it does.
final class MachineHolder: @unchecked Sendable {
    weak var machine: Machine?
}
