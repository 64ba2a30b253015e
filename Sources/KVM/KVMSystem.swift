import CKVM
import Glibc

/// `/dev/kvm`: the system-level handle. Creates VMs and answers capability questions.
public final class KVMSystem: @unchecked Sendable {
    let fd: OwnedFileDescriptor
    public let path: String

    /// Opens the KVM device and checks it speaks the stable API (version 12).
    public init(path: String = "/dev/kvm") throws(KVMError) {
        let raw = open(path, O_RDWR | O_CLOEXEC)
        guard raw >= 0 else { throw KVMError.openDevice(path: path, .current) }
        fd = OwnedFileDescriptor(raw)
        self.path = path
        let version = try checkedIoctl("KVM_GET_API_VERSION") { ckvm_ioctl_none(raw, CKVM_GET_API_VERSION) }
        guard version == KVM_API_VERSION else { throw KVMError.unsupportedAPIVersion(version) }
    }

    /// KVM_CHECK_EXTENSION: 0 when absent, otherwise a capability-specific value.
    public func checkExtension(_ capability: Capability) -> Int32 {
        let raw = fd.rawValue
        return (try? checkedIoctl("KVM_CHECK_EXTENSION") {
            ckvm_ioctl_value(raw, CKVM_CHECK_EXTENSION, UInt(capability.rawValue))
        }) ?? 0
    }

    /// The number of vCPUs KVM recommends (KVM_CAP_NR_VCPUS) and allows (KVM_CAP_MAX_VCPUS).
    public var recommendedVCPUs: Int { max(Int(checkExtension(.nrVCPUs)), 4) }
    public var maximumVCPUs: Int {
        let m = Int(checkExtension(.maxVCPUs))
        return m > 0 ? m : recommendedVCPUs
    }

    func vcpuMmapSize() throws(KVMError) -> Int {
        let raw = fd.rawValue
        return Int(try checkedIoctl("KVM_GET_VCPU_MMAP_SIZE") { ckvm_ioctl_none(raw, CKVM_GET_VCPU_MMAP_SIZE) })
    }

    /// KVM_GET_SUPPORTED_CPUID: the CPUID leaves this host can offer a guest.
    public func supportedCPUID() throws(KVMError) -> [CPUIDEntry] {
        var capacity: UInt32 = 128
        while true {
            guard let block = ckvm_cpuid_alloc(capacity) else { throw KVMError.invalidArgument("out of memory") }
            defer { ckvm_free(block) }
            let raw = fd.rawValue
            let r = ckvm_ioctl_pointer(raw, CKVM_GET_SUPPORTED_CPUID, block)
            if r < 0 {
                // E2BIG: the table did not fit; try a larger one.
                if errno == E2BIG && capacity < 4096 { capacity *= 2; continue }
                throw KVMError.ioctl("KVM_GET_SUPPORTED_CPUID", .current)
            }
            return CPUIDEntry.decode(block)
        }
    }

    /// Creates an empty virtual machine.
    public func createVirtualMachine() throws(KVMError) -> VirtualMachine {
        let raw = fd.rawValue
        let vmfd = try checkedIoctl("KVM_CREATE_VM") { ckvm_ioctl_value(raw, CKVM_CREATE_VM, 0) }
        return VirtualMachine(fd: OwnedFileDescriptor(vmfd), runSize: try vcpuMmapSize(), system: self)
    }

    /// The capabilities MominAI asks about.
    public enum Capability: Sendable {
        case irqchip, userMemory, setTSSAddress, extendedCPUID, irqfd, ioeventfd, pit2, nrVCPUs, maxVCPUs, immediateExit

        var rawValue: Int32 {
            switch self {
            case .irqchip: CKVM_CAP_IRQCHIP
            case .userMemory: CKVM_CAP_USER_MEMORY
            case .setTSSAddress: CKVM_CAP_SET_TSS_ADDR
            case .extendedCPUID: CKVM_CAP_EXT_CPUID
            case .irqfd: CKVM_CAP_IRQFD
            case .ioeventfd: CKVM_CAP_IOEVENTFD
            case .pit2: CKVM_CAP_PIT2
            case .nrVCPUs: CKVM_CAP_NR_VCPUS
            case .maxVCPUs: CKVM_CAP_MAX_VCPUS
            case .immediateExit: CKVM_CAP_IMMEDIATE_EXIT
            }
        }

        public var name: String { "KVM_CAP_\(self)" }
    }

    /// Fails with `missingCapability` unless every listed capability is present.
    public func require(_ capabilities: [Capability]) throws(KVMError) {
        for c in capabilities where checkExtension(c) <= 0 {
            throw KVMError.missingCapability(c.name)
        }
    }
}
