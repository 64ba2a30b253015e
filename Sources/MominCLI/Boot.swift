import ArgumentParser
import Glibc
import Host

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
        try machine.refuseScratch("boot")
        let disks = try machine.diskRequests()
        let config = try machine.configuration()
        let host = hostEnvironment()
        try VMMLauncher(host).preflight(config)  // refuses bad input here, before any rig or child
        let rootImage = try machine.rootImagePath()
        try AttachedDisk.check(disks + (rootImage.map { [.rootImage($0)] } ?? []), policy: nil)
        let rig = try machine.rigDisks(disks)
        try Rig.check(config, noRig: machine.noRig, outputs: rig.written, drives: rig.drives, files: rig.files)
        // No policy governs a boot: the disks are the caller's to choose, as the kernel is; and
        // no log records them, so they are not read for digests.
        let attached = try AttachedDisk.openAll(rootImage: rootImage, disks: disks, scratch: nil, policy: nil, digestLimit: 0)

        // The microVM itself lives in momin-vmm, a small process of its own (no Foundation), in
        // its jail; this process holds its grant, waits for it, passes on the signals that would
        // stop it, frees what it held, and exits as it did.
        let status = try ForegroundVM.run(config, disks: attached, overlaySize: machine.overlay, jail: machine.jail, timeout: machine.timeout, reportMemory: reportMemory,
                                          environment: host)
        if status & 0x7f == 0 { Glibc.exit((status >> 8) & 0xff) }
        Glibc.exit(128 + (status & 0x7f))
    }
}
