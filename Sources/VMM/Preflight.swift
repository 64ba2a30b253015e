import KVM
import Devices
import Glibc
import LinuxBoot

/// The kernel and initrd, read and checked against the configuration before any KVM resource
/// is taken, so that bad input fails fast with a message naming what was wrong.
public struct BootPayload: Sendable {
    public let kernel: BzImage
    public let kernelFile: BootFile
    public let initrdFile: BootFile?
}

public enum Preflight {
    /// xAPIC ids are 8 bits and 0xff is broadcast; the IOAPIC takes the id after the last CPU.
    public static let maximumVCPUs = 254

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
        return BootPayload(kernel: kernel, kernelFile: kernelFile, initrdFile: initrdFile)
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

/// Facts about this host's KVM that decide whether a stock kernel can boot on it.
public enum KVMHost {
    /// A reason to go through the nested rig, or nil when this host's KVM can boot stock kernels
    /// (or is missing, which `Machine` reports as an error), or when already inside the rig.
    public static func needsRig(kvmPath: String) -> String? {
        if let inRig = getenv("MOMIN_IN_RIG"), String(cString: inRig) == "1" { return nil }
        guard access(kvmPath, F_OK) == 0 else { return nil }
        if access("/sys/module/kvm_pvm", F_OK) == 0 {
            return "\(kvmPath) here is PVM (kvm_pvm), which runs only PVM-aware guest kernels"
        }
        if !cpuHasHardwareVirtualization() {
            return "this CPU shows neither vmx nor svm, so \(kvmPath) cannot run stock kernels"
        }
        return nil
    }

    static func cpuHasHardwareVirtualization() -> Bool {
        guard let file = fopen("/proc/cpuinfo", "r") else { return false }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            guard let line else { continue }
            let text = String(cString: line)
            guard text.hasPrefix("flags") else { continue }
            let flags = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
            return flags.contains("vmx") || flags.contains("svm")
        }
        return false
    }
}
