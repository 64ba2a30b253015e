/// The guest's vsock address and the host Unix socket that stands for it.
public struct VsockConfiguration: Equatable, Sendable {
    /// The guest's context id (3 or more; 2 is the host).
    public var guestCID: UInt64
    /// Host processes connect here and write `CONNECT <port>`; guest connections to host port P
    /// go to `<socketPath>_P` (Firecracker's convention).
    public var socketPath: String

    public init(guestCID: UInt64 = 3, socketPath: String) {
        self.guestCID = guestCID
        self.socketPath = socketPath
    }
}

/// What the user asked for: one microVM booting a Linux kernel.
public struct MachineConfiguration: Equatable, Sendable {
    public var kernelPath: String
    public var initrdPath: String?
    public var commandLine: String
    public var vcpus: Int
    public var memoryMiB: UInt64
    public var kvmPath: String
    /// A virtio-vsock device, when the host is to talk to the guest (Doors).
    public var vsock: VsockConfiguration?
    /// 32 bytes that make virtio-rng's stream reproducible (`SeededEntropy`), for sessions
    /// that will be replayed; nil: the host's CSPRNG.
    public var entropySeed: [UInt8]?
    /// Host CPUs the vCPU threads are pinned to (vCPU i on the i-th, round robin when there
    /// are fewer), as the resource ledger granted them; nil: not pinned.
    public var hostCPUs: [Int]?
    /// virtio-blk disks, in the guest's order (/dev/vda first); at most `maximumDisks`.
    public var disks: [DiskConfiguration] = []

    /// The command line used when the user gives none: serial console on the 8250 at 0x3f8,
    /// reboot through the i8042 (the VMM treats it as an exit), no PCI probing on a bus we don't have.
    public static let defaultCommandLine = "console=ttyS0 reboot=k pci=off quiet"

    public static let maximumMemoryMiB: UInt64 = 1 << 20  // 1 TiB
    /// xAPIC ids are 8 bits and 0xff is broadcast; the IOAPIC takes the id after the last CPU.
    public static let maximumVCPUs = 254
    /// Disks per machine: each takes a virtio-mmio window and an interrupt pin (19 are free).
    public static let maximumDisks = 8

    public init(kernelPath: String, initrdPath: String? = nil, commandLine: String = defaultCommandLine,
                vcpus: Int = 1, memoryMiB: UInt64 = 256, kvmPath: String = "/dev/kvm") {
        self.kernelPath = kernelPath
        self.initrdPath = initrdPath
        self.commandLine = commandLine
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
        self.kvmPath = kvmPath
    }
}

/// A host file the VMM opens once, at start-up, before its seccomp filters go on: the one way
/// files reach momin-vmm (docs/jailer.md). The launcher binds each into the VMM's jail at
/// `/vm/ROLE` (read-only unless `writable`) and hands momin-vmm those paths; momin-vmm opens
/// nothing after its filters are installed. Kernel, initrd and disks today; memory files and
/// VFIO devices join `Role` as their devices arrive.
public struct MachineFile: Equatable, Sendable {
    public enum Role: Hashable, Sendable, CustomStringConvertible {
        case kernel, initrd
        /// `disks[index]`, writable when the disk is.
        case disk(Int)

        /// Its name in messages and inside the jail.
        public var description: String {
            switch self {
            case .kernel: "kernel"
            case .initrd: "initrd"
            case .disk(let index): "disk\(index)"
            }
        }
    }

    public var role: Role
    public var path: String
    public var writable: Bool

    public init(_ role: Role, path: String, writable: Bool = false) {
        self.role = role
        self.path = path
        self.writable = writable
    }
}

extension MachineConfiguration {
    /// Every host file this machine opens.
    public var files: [MachineFile] {
        [MachineFile(.kernel, path: kernelPath)] + (initrdPath.map { [MachineFile(.initrd, path: $0)] } ?? [])
            + disks.enumerated().filter { $0.element.descriptor == nil }
                .map { MachineFile(.disk($0.offset), path: $0.element.path, writable: !$0.element.readOnly) }
    }

    /// The same machine with each file's path replaced by `place(file)` (where a jail shows it).
    public func relocatingFiles(_ place: (MachineFile) -> String) -> MachineConfiguration {
        var moved = self
        for file in files {
            switch file.role {
            case .kernel: moved.kernelPath = place(file)
            case .initrd: moved.initrdPath = place(file)
            case .disk(let index): moved.disks[index].path = place(file)
            }
        }
        return moved
    }
}
