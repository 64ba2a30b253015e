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

    @Option(help: "The bzImage to boot (default: the guest image's kernel).")
    var kernel: String?

    @Option(help: "An initramfs to pass to the kernel (default: the guest image's, when --kernel is not given).")
    var initrd: String?

    @Option(help: "The kernel command line.")
    var cmdline: String = MachineConfiguration.defaultCommandLine

    @Option(help: "Virtual CPUs.")
    var vcpus: Int = 1

    @Option(help: "Guest memory in MiB.")
    var memory: Int = 256

    @Option(help: "Stop the guest and fail after this many seconds (0: no limit).")
    var timeout: Double = 0

    @Flag(help: "Never go through the nested rig; fail if this host's KVM cannot boot stock kernels.")
    var noRig = false

    @Option(help: .hidden)
    var kvmDevice: String = "/dev/kvm"

    @Flag(help: "At boot-complete, also print the VMM's resident memory outside guest RAM (vmm-rss-excluding-guest-kib).")
    var reportMemory = false

    func run() throws {
        guard vcpus >= 1 else { throw CLIError.usage("--vcpus \(vcpus) is out of range: at least 1 vCPU is needed") }
        guard memory >= 1 else { throw CLIError.usage("--memory \(memory) MiB is out of range") }
        guard timeout >= 0, timeout.isFinite else { throw CLIError.usage("--timeout \(timeout) is not a number of seconds ≥ 0") }
        let image = GuestImage.default
        let kernelPath = kernel ?? image.kernel
        let initrdPath = initrd ?? (kernel == nil ? image.initrd : nil)
        let config = MachineConfiguration(kernelPath: kernelPath, initrdPath: initrdPath, commandLine: cmdline,
                                          vcpus: vcpus, memoryMiB: UInt64(memory), kvmPath: kvmDevice)
        let payload: BootPayload
        do { payload = try Preflight.check(config) } catch { throw CLIError.usage(error.description) }

        if let reason = KVMHost.needsRig(kvmPath: kvmDevice) {
            if noRig { throw CLIError.usage("\(reason); it cannot boot stock kernels (drop --no-rig to use the nested rig)") }
            try Rig.reexec(reason: reason, files: [kernelPath, initrdPath].compactMap { $0 })
        }

        let machine: Machine
        let memoryReport = MemoryReport()
        do {
            machine = try Machine(config, payload: payload, observer: MachineObserver(
                console: FileDescriptorOutput(fd: 1),
                bootComplete: { [reportMemory] us in
                    writeStandardError("boot-complete \(us) us\n")
                    if reportMemory, let kib = memoryReport.machine?.vmmResidentKiB() {
                        writeStandardError("vmm-rss-excluding-guest-kib: \(kib)\n")
                    }
                },
                firstEntry: { us in writeStandardError("vmm-setup \(us) us\n") }))
            memoryReport.machine = machine
        } catch {
            throw error.isUsageError ? CLIError.usage(error.description) : CLIError.guest(error.description)
        }
        let exit: MachineExit
        do { exit = try machine.run(timeoutSeconds: timeout > 0 ? timeout : nil) } catch {
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
