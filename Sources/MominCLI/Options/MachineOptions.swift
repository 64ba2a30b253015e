import ArgumentParser
import Glibc
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

    @Option(help: ArgumentHelp("momin start only: give the VM a scratch disk of this size (512M, 4G), mounted at /scratch: a sparse ext4 file that outlives momin stop and is attached again at the next momin start of the same name (docs/disks.md, \"Scratch\").",
                               valueName: "SIZE"))
    var scratch: String?

    var jail: VMJail.Mode { noJail ? .unjailed : .jailed }

    /// For the commands whose VM has no name to keep a scratch disk under: refused, not ignored.
    func refuseScratch(_ command: String) throws {
        guard let scratch else { return }
        throw CLIError.usage("--scratch \(scratch): momin \(command) has no named VM to keep a scratch disk for; use momin start NAME --scratch SIZE")
    }

    /// How this command's disks reach the nested rig, should it go through one: the root image
    /// and read-only disks as read-only QEMU drives at their paths (`Scripts/rig --drive`), a
    /// store image's manifest and the store's names carried as files so that the name resolves
    /// there too; read-write disks are files the command writes, which the rig would lose.
    func rigDisks(_ requests: [DiskRequest]) throws -> (drives: [String], files: [String], written: [String]) {
        var drives = requests.filter { !$0.writable }.map { Paths.absolute($0.path) }
        let written = requests.filter(\.writable).map { Paths.absolute($0.path) }
        var files: [String] = []
        if let path = try rootImagePath() {
            drives.insert(Paths.absolute(path), at: 0)
            if let image, !image.contains("/") {
                let store = imageStore(processEnvironment())
                files = [store.namesPath, store.manifestPath(try store.resolve(image))].filter { access($0, F_OK) == 0 }
            }
        }
        return (drives, files, written)
    }

    /// `--image` as a file: a path (anything with a /) as it is, else the image store's name or
    /// digest (momin image ls).
    func rootImagePath() throws -> String? {
        try request.rootImagePath(in: imageStore(processEnvironment()))
    }

    /// The `--disk` options read, and checked together.
    func diskRequests() throws -> [DiskRequest] { try request.diskRequests() }

    /// These options as the Host library takes them.
    var request: MachineRequest {
        var request = MachineRequest()
        request.kernel = kernel
        request.initrd = initrd
        request.commandLine = cmdline
        request.vcpus = vcpus
        request.memoryMiB = memory
        request.timeout = timeout
        request.kvmDevice = kvmDevice
        request.jail = jail
        request.entropySeed = entropySeed
        request.disks = disks
        request.image = image
        request.overlay = overlay
        request.scratch = scratch
        return request
    }

    /// The machine these options describe, with `extraCommandLine` appended to the kernel's.
    func configuration(extraCommandLine: String? = nil) throws -> MachineConfiguration {
        try request.configuration(extraCommandLine: extraCommandLine)
    }
}
