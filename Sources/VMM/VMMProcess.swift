import Devices
import Glibc

/// The body of `momin-vmm`: one microVM in the foreground. Console on stdout; `vmm-setup` and
/// `boot-complete` lines on stderr; SIGTERM, SIGINT or SIGHUP stop the guest cleanly.
/// Returns the exit status: 0 when the guest powered off, rebooted or was stopped, 1 when it
/// died or timed out, 2 on bad input.
public enum VMMProcess {
    public static func run(_ arguments: VMMArguments) -> Int32 {
        if arguments.newSession { _ = setsid() }
        let config = arguments.configuration
        let payload: BootPayload
        do { payload = try Preflight.check(config) } catch { return fail(error.description, 2) }

        // Termination signals go to one watcher thread, never to a vCPU thread: block them here,
        // before any thread exists, so every thread inherits the mask.
        // SIGUSR1 too: it asks for the devices' state (below).
        var watched = sigset_t()
        sigemptyset(&watched)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGUSR1] { sigaddset(&watched, s) }
        pthread_sigmask(SIG_BLOCK, &watched, nil)

        let holder = MachineHolder()
        let machine: Machine
        do {
            machine = try Machine(config, payload: payload, observer: MachineObserver(
                console: FileDescriptorOutput(fd: 1),
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
        _ = try? NativeThread(name: "signals") {
            var set = watcherSet
            var signal: Int32 = 0
            while sigwait(&set, &signal) == 0 {
                guard signal == SIGUSR1 else {
                    holder.machine?.requestStop()
                    return
                }
                let lines = holder.machine?.diagnostics() ?? []
                report((["momin-vmm: state on SIGUSR1:"] + lines.map { "  " + $0 }).joined(separator: "\n"))
            }
        }
        let exit: MachineExit
        do { exit = try machine.run(timeoutSeconds: arguments.timeout) } catch { return fail(error.description, 1) }
        if !machine.stuckVCPUs.isEmpty {
            // Returning would run deinits that wait on those threads; leave at once.
            report("momin-vmm: error: \(exit.description); vCPU \(machine.stuckVCPUs.map(String.init).joined(separator: ", ")) "
                   + "did not leave KVM_RUN within \(Machine.stopWaitSeconds) s of being stopped")
            _exit(1)
        }
        return exit.isClean ? 0 : fail(exit.description, 1)
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
