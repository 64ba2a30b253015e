import ArgumentParser
import Glibc
import VMM

/// `momin boot`: boot a kernel in a fresh microVM with its serial console on stdout.
struct Boot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot a Linux kernel in a microVM; the guest's serial console goes to stdout.",
        discussion: """
            Exits 0 when the guest powers off or reboots, 1 when it dies (triple fault, KVM \
            error) or outlives --timeout, 2 on bad input. On a host whose /dev/kvm is PVM-only \
            the boot goes through the nested rig (Scripts/rig) unless --no-rig is given.
            """)

    @OptionGroup var machine: MachineOptions

    @Flag(help: "At boot-complete, also print the VMM's resident memory outside guest RAM (vmm-rss-excluding-guest-kib).")
    var reportMemory = false

    func run() throws {
        let config = try machine.configuration()
        let payload = try machine.preflight(config)
        if let reason = KVMHost.needsRig(kvmPath: config.kvmPath) {
            if machine.noRig { throw CLIError.usage("\(reason); it cannot boot stock kernels (drop --no-rig to use the nested rig)") }
            try Rig.reexec(reason: reason, files: [config.kernelPath, config.initrdPath].compactMap { $0 })
        }

        let vm: Machine
        let memoryReport = MemoryReport()
        do {
            vm = try Machine(config, payload: payload, observer: MachineObserver(
                console: FileDescriptorOutput(fd: 1),
                bootComplete: { [reportMemory] us in
                    writeStandardError("boot-complete \(us) us\n")
                    if reportMemory, let kib = memoryReport.machine?.vmmResidentKiB() {
                        writeStandardError("vmm-rss-excluding-guest-kib: \(kib)\n")
                    }
                },
                firstEntry: { us in writeStandardError("vmm-setup \(us) us\n") }))
            memoryReport.machine = vm
        } catch {
            throw error.isUsageError ? CLIError.usage(error.description) : CLIError.guest(error.description)
        }
        let exit: MachineExit
        do { exit = try vm.run(timeoutSeconds: machine.timeout > 0 ? machine.timeout : nil) } catch {
            throw CLIError.guest(error.description)
        }
        guard exit.isClean else { throw CLIError.guest(exit.description) }
    }
}

/// Lets the boot-complete hook reach the machine it belongs to, which exists only after the hook
/// is made. Set once before the machine runs.
final class MemoryReport: @unchecked Sendable {
    weak var machine: Machine?
}
