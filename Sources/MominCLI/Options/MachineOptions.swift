import ArgumentParser
import Host
import MachineConfig

/// The options every command that boots a microVM shares.
struct MachineOptions: ParsableArguments {
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

    @Flag(help: "For debugging only: run momin-vmm without its jail (namespaces, its own uid, no capabilities) and cgroup; its seccomp filters stay.")
    var noJail = false

    @Option(help: "64 hexadecimal digits that seed the guest's virtio-rng, so a session can be replayed (default: the host's CSPRNG).")
    var entropySeed: String?

    @Option(name: .customLong("disk"),
            help: ArgumentHelp("Attach host file PATH as a virtio-blk disk: read-only unless :rw; with ,name=N the guest mounts it at /evidence/N (read-only) or /disks/N; bps= and iops= limit its bytes and requests per second. Up to 8, /dev/vda first (docs/disks.md).",
                               valueName: "PATH[:ro|:rw][,name=N][,bps=N][,iops=N]"))
    var disks: [String] = []

    @Option(help: ArgumentHelp("Boot on this root image: a name or digest from momin image ls, or an ext4 file's path (with a /). Attached read-only as /dev/vda and shared by every VM that uses it; momin-init makes a writable layer over it the guest's / (docs/disks.md, \"Root images\").",
                               valueName: "NAME|PATH"))
    var image: String?

    @Option(help: ArgumentHelp("The size of the writable layer over --image: a tmpfs in guest memory, such as 256m, 1g or 50% (default 25%).",
                               valueName: "SIZE"))
    var overlay: String?

    var jail: VMJail.Mode { noJail ? .unjailed : .jailed }

    /// For the commands that do not attach disks yet: a `--disk` is refused, not ignored.
    func refuseDisks(_ command: String) throws {
        guard image == nil, overlay == nil else {
            throw CLIError.usage("--image is not taken by momin \(command) yet, only by momin run (docs/disks.md, \"Not yet\")")
        }
        guard disks.isEmpty else {
            throw CLIError.usage("--disk is not taken by momin \(command) yet, only by momin run (docs/disks.md, \"Not yet\")")
        }
    }

    /// `--image` as a file: a path (anything with a /) as it is, else the image store's name or
    /// digest (momin image ls).
    func rootImagePath() throws -> String? {
        guard let image else { return nil }
        if image.contains("/") { return image }
        let store = imageStore(processEnvironment())
        do { return store.imagePath(try store.resolve(image)) } catch {
            throw CLIError.usage("--image \(image): \(error) (a file's path needs a /, e.g. ./\(image))")
        }
    }

    /// The `--disk` options read, and checked together.
    func diskRequests() throws -> [DiskRequest] {
        let requests = try disks.map { text throws(HostError) in try DiskRequest.parse(text) }
        try DiskRequest.checkSet(requests + (image.map { [DiskRequest.rootImage($0)] } ?? []))
        if let overlay {
            guard image != nil else { throw CLIError.usage("--overlay \(overlay): there is no --image to lay it over") }
            try DiskRequest.checkOverlaySize(overlay)
        }
        return requests
    }

    /// The machine these options describe, with `extraCommandLine` appended to the kernel's.
    func configuration(extraCommandLine: String? = nil) throws -> MachineConfiguration {
        guard vcpus >= 1 else { throw CLIError.usage("--vcpus \(vcpus) is out of range: at least 1 vCPU is needed") }
        guard memory >= 1 else { throw CLIError.usage("--memory \(memory) MiB is out of range") }
        guard timeout >= 0, timeout.isFinite else { throw CLIError.usage("--timeout \(timeout) is not a number of seconds ≥ 0") }
        let image = GuestImage.default
        let kernelPath = kernel ?? image.kernel
        let initrdPath = initrd ?? (kernel == nil ? image.initrd : nil)
        let commandLine = extraCommandLine.map { cmdline + " " + $0 } ?? cmdline
        var config = MachineConfiguration(kernelPath: kernelPath, initrdPath: initrdPath, commandLine: commandLine,
                                          vcpus: vcpus, memoryMiB: UInt64(memory), kvmPath: kvmDevice)
        if let entropySeed {
            guard let seed = EntropySeed.parse(entropySeed) else {
                throw CLIError.usage("--entropy-seed \(entropySeed) is not 64 hexadecimal digits")
            }
            config.entropySeed = seed
        }
        return config
    }
}
