import ArgumentParser
import Glibc
import VMM

/// `momin boot`: boot a kernel in a fresh microVM with its serial console on stdout.
struct Boot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot a Linux kernel in a microVM; the guest's serial console goes to stdout.",
        discussion: """
            Exits 0 when the guest powers off or reboots, 1 when it dies (triple fault, KVM \
            error) or outlives --timeout, 2 on bad input, 75 when the host has no room for it \
            (momin ps --tree). On a host whose /dev/kvm is PVM-only \
            the boot goes through the nested rig (Scripts/rig) unless --no-rig is given.
            """)

    @OptionGroup var machine: MachineOptions

    @Flag(help: "At boot-complete, also print the VMM's resident memory outside guest RAM (vmm-rss-excluding-guest-kib).")
    var reportMemory = false

    func run() throws {
        var config = try machine.configuration()
        _ = try machine.preflight(config)  // refuses bad input here, before any rig or child
        if let reason = KVMHost.needsRig(kvmPath: config.kvmPath) {
            if machine.noRig { throw CLIError.usage("\(reason); it cannot boot stock kernels (drop --no-rig to use the nested rig)") }
            try Rig.reexec(reason: reason, files: [config.kernelPath, config.initrdPath].compactMap { $0 })
        }

        // The grant is this process's, and so the VMM's once it replaces this process: freed
        // (reaped) when the VM ends.
        config.hostCPUs = try HostResources.grant(id: "boot-\(getpid())", config).cpus
        // The microVM itself lives in momin-vmm, a small process of its own (no Foundation).
        try VMMLauncher.exec(config, timeout: machine.timeout, reportMemory: reportMemory)
    }
}
