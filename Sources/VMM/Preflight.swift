import KVM
import Devices
import Glibc
import LinuxBoot
import MachineConfig

/// The kernel, initrd and disks, opened and checked against the configuration before any KVM
/// resource is taken, so that bad input fails fast with a message naming what was wrong.
public struct BootPayload: Sendable {
    public let kernel: BzImage
    public let kernelFile: BootFile
    public let initrdFile: BootFile?
    /// One per `MachineConfiguration.disks` entry, in order.
    public let disks: [DiskFile]
}

public enum Preflight {
    public static let maximumVCPUs = MachineConfiguration.maximumVCPUs

    public static func check(_ config: MachineConfiguration) throws(VMMError) -> BootPayload {
        guard config.vcpus >= 1, config.vcpus <= Self.maximumVCPUs else {
            throw .invalidVCPUCount(requested: config.vcpus, hostLimit: Self.maximumVCPUs)
        }
        guard config.memoryMiB > 0, config.memoryMiB <= MachineConfiguration.maximumMemoryMiB else {
            throw .invalidMemory("--memory \(config.memoryMiB) MiB is out of range (1 to \(MachineConfiguration.maximumMemoryMiB))")
        }
        if let seed = config.entropySeed, seed.count != SeededEntropy.seedSize {
            throw .device("an entropy seed is \(SeededEntropy.seedSize) bytes, not \(seed.count)")
        }
        let kernelFile = try BootFile(config.kernelPath, role: "kernel")
        let kernel: BzImage
        do { kernel = try BzImage(header: try kernelFile.prefix(BzImage.headerReadSize), fileSize: kernelFile.size) } catch let error as BootError {
            throw .boot(.notBzImage("\(config.kernelPath): \(error.description.replacingPrefix("not a bzImage: "))"))
        } catch let error as VMMError { throw error } catch { fatalError("unreachable: \(error)") }
        let initrdFile = try config.initrdPath.map { path throws(VMMError) in try BootFile(path, role: "initrd") }
        let initrdSize = initrdFile?.size ?? 0
        let required = LinuxLoader.minimumMemoryMiB(kernel: kernel, initrdSize: initrdSize)
        guard config.memoryMiB >= required else {
            if initrdSize > 0, LinuxLoader.minimumMemoryMiB(kernel: kernel, initrdSize: 0) <= config.memoryMiB {
                throw .boot(.initrdTooLarge(size: initrdSize,
                                            availableBytes: (config.memoryMiB - LinuxLoader.minimumMemoryMiB(kernel: kernel, initrdSize: 0)) << 20))
            }
            throw .boot(.memoryTooSmall(requestedMiB: config.memoryMiB, requiredMiB: required))
        }
        let cmdlineLength = config.commandLine.utf8.count
        let cmdlineMax = LinuxLoader.maximumCommandLineLength(kernel: kernel)
        guard cmdlineLength <= cmdlineMax else { throw .boot(.commandLineTooLong(length: cmdlineLength, max: cmdlineMax)) }
        guard config.disks.count <= MachineConfiguration.maximumDisks else {
            throw .invalidDisk(path: config.disks[MachineConfiguration.maximumDisks].path,
                               reason: "more than \(MachineConfiguration.maximumDisks) disks")
        }
        let disks = try DiskFiles.open(config.disks)
        return BootPayload(kernel: kernel, kernelFile: kernelFile, initrdFile: initrdFile, disks: disks)
    }
}

extension Preflight {
    /// Opens and closes the KVM device, so that a missing one or one this user may not open is
    /// reported before anything is set up around the VM (its jail, its cgroup).
    public static func checkKVMDevice(_ path: String) throws(VMMError) {
        do { _ = try KVMSystem(path: path) } catch { throw .kvm(error) }
    }
}

extension String {
    func replacingPrefix(_ prefix: String) -> String { hasPrefix(prefix) ? String(dropFirst(prefix.count)) : self }
}
