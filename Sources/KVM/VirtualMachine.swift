import CKVM
import Glibc

/// A KVM virtual machine (the fd KVM_CREATE_VM returned). Owns its memory slots' registrations,
/// in-kernel interrupt controllers and vCPUs' creation.
public final class VirtualMachine: @unchecked Sendable {
    let fd: OwnedFileDescriptor
    let runSize: Int
    /// Kept alive so the system fd outlives every VM made from it.
    let system: KVMSystem

    init(fd: consuming OwnedFileDescriptor, runSize: Int, system: KVMSystem) {
        self.fd = fd
        self.runSize = runSize
        self.system = system
    }

    /// KVM_SET_USER_MEMORY_REGION: maps `size` bytes of host memory at `hostAddress` to
    /// guest-physical `guestAddress` in slot `slot`. The caller keeps the mapping alive.
    public func setUserMemoryRegion(slot: UInt32, guestAddress: UInt64, size: UInt64,
                                    hostAddress: UnsafeMutableRawPointer, readOnly: Bool = false) throws(KVMError) {
        var region = kvm_userspace_memory_region(
            slot: slot, flags: readOnly ? UInt32(KVM_MEM_READONLY) : 0,
            guest_phys_addr: guestAddress, memory_size: size,
            userspace_addr: UInt64(UInt(bitPattern: hostAddress)))
        let raw = fd.rawValue
        try checkedIoctl("KVM_SET_USER_MEMORY_REGION") {
            ckvm_ioctl_pointer(raw, CKVM_SET_USER_MEMORY_REGION, &region)
        }
    }

    /// KVM_SET_TSS_ADDR: three pages of guest-physical space KVM needs on Intel hosts
    /// (real-mode emulation); must not overlap RAM or MMIO.
    public func setTSSAddress(_ address: UInt64) throws(KVMError) {
        let raw = fd.rawValue
        try checkedIoctl("KVM_SET_TSS_ADDR") { ckvm_ioctl_value(raw, CKVM_SET_TSS_ADDR, UInt(address)) }
    }

    /// KVM_SET_IDENTITY_MAP_ADDR: one page for the EPT identity map on Intel hosts.
    public func setIdentityMapAddress(_ address: UInt64) throws(KVMError) {
        var a = address
        let raw = fd.rawValue
        try checkedIoctl("KVM_SET_IDENTITY_MAP_ADDR") { ckvm_ioctl_pointer(raw, CKVM_SET_IDENTITY_MAP_ADDR, &a) }
    }

    /// KVM_CREATE_IRQCHIP: in-kernel PIC pair, IOAPIC and per-vCPU local APICs.
    public func createInterruptController() throws(KVMError) {
        let raw = fd.rawValue
        try checkedIoctl("KVM_CREATE_IRQCHIP") { ckvm_ioctl_none(raw, CKVM_CREATE_IRQCHIP) }
    }

    /// KVM_CREATE_PIT2: the in-kernel i8254 timer, with the PC speaker port left dummy.
    public func createProgrammableIntervalTimer() throws(KVMError) {
        var config = kvm_pit_config()
        config.flags = UInt32(KVM_PIT_SPEAKER_DUMMY)
        let raw = fd.rawValue
        try checkedIoctl("KVM_CREATE_PIT2") { ckvm_ioctl_pointer(raw, CKVM_CREATE_PIT2, &config) }
    }

    /// KVM_IRQ_LINE: drives a GSI of the in-kernel irqchip high or low.
    public func setInterruptLine(gsi: UInt32, high: Bool) throws(KVMError) {
        var level = kvm_irq_level()
        level.irq = gsi
        level.level = high ? 1 : 0
        let raw = fd.rawValue
        try checkedIoctl("KVM_IRQ_LINE") { ckvm_ioctl_pointer(raw, CKVM_IRQ_LINE, &level) }
    }

    /// KVM_IRQFD: a signal on `event` injects GSI `gsi` (edge) without a trip through userspace.
    public func registerInterruptEvent(_ event: EventFD, gsi: UInt32) throws(KVMError) {
        var request = kvm_irqfd()
        request.fd = UInt32(event.pollDescriptor)
        request.gsi = gsi
        let raw = fd.rawValue
        try checkedIoctl("KVM_IRQFD") { ckvm_ioctl_pointer(raw, CKVM_IRQFD, &request) }
    }

    /// KVM_IOEVENTFD: a guest write to `address` (MMIO, or a port when `pio`) signals `event`
    /// instead of exiting to userspace. With `match`, only writes of that value count.
    public func registerIOEvent(_ event: EventFD, address: UInt64, length: UInt32, pio: Bool = false,
                                match: UInt64? = nil) throws(KVMError) {
        var request = kvm_ioeventfd()
        request.addr = address
        request.len = length
        request.fd = event.pollDescriptor
        var flags: UInt32 = 0
        if pio { flags |= UInt32(1 << kvm_ioeventfd_flag_nr_pio) }
        if let match {
            flags |= UInt32(1 << kvm_ioeventfd_flag_nr_datamatch)
            request.datamatch = match
        }
        request.flags = flags
        let raw = fd.rawValue
        try checkedIoctl("KVM_IOEVENTFD") { ckvm_ioctl_pointer(raw, CKVM_IOEVENTFD, &request) }
    }

    /// KVM_CREATE_VCPU with the given APIC id, and the mapping of its shared run area.
    public func createVCPU(id: Int) throws(KVMError) -> VCPU {
        let raw = fd.rawValue
        let vcpufd = try checkedIoctl("KVM_CREATE_VCPU") { ckvm_ioctl_value(raw, CKVM_CREATE_VCPU, UInt(id)) }
        let owned = OwnedFileDescriptor(vcpufd)
        guard let area = mmap(nil, runSize, PROT_READ | PROT_WRITE, MAP_SHARED, vcpufd, 0),
              area != MAP_FAILED else {
            throw KVMError.mmap(.current)
        }
        return VCPU(id: id, fd: owned, run: area, runSize: runSize, vm: self)
    }
}
