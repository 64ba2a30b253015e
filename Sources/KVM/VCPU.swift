import CKVM
import Glibc

/// A virtual CPU: its fd and the shared `kvm_run` area. Used by one thread at a time.
public final class VCPU: @unchecked Sendable {
    public let id: Int
    let fd: OwnedFileDescriptor
    let runMapping: UnsafeMutableRawPointer
    let runSize: Int
    let vm: VirtualMachine
    /// Where the answer to the last `ioIn`/`mmioRead` goes.
    private var pendingInput: PendingInput = .none

    private enum PendingInput { case none, io(offset: Int, length: Int), mmio(length: Int) }

    init(id: Int, fd: consuming OwnedFileDescriptor, run: UnsafeMutableRawPointer, runSize: Int, vm: VirtualMachine) {
        self.id = id
        self.fd = fd
        self.runMapping = run
        self.runSize = runSize
        self.vm = vm
    }

    deinit { munmap(runMapping, runSize) }

    private var runArea: UnsafeMutablePointer<kvm_run> { runMapping.assumingMemoryBound(to: kvm_run.self) }

    /// Enters the guest until the next exit that needs the VMM.
    public func run() throws(KVMError) -> VCPUExit {
        pendingInput = .none
        if ckvm_ioctl_none(fd.rawValue, CKVM_RUN) < 0 {
            let e = errno
            if e == EINTR || e == EAGAIN { return .interrupted }
            throw KVMError.ioctl("KVM_RUN", Errno(e))
        }
        var exit = ckvm_exit()
        ckvm_decode_exit(runArea, &exit)
        switch exit.reason {
        case CKVM_EXIT_IO:
            let size = Int(exit.io_size), count = Int(exit.io_count)
            let offset = Int(exit.io_data_offset)
            let length = size * count
            guard size > 0, offset >= 0, offset + length <= runSize else { return .unhandled(reason: exit.reason) }
            if exit.io_direction == CKVM_EXIT_IO_IN {
                pendingInput = .io(offset: offset, length: length)
                return .ioIn(port: exit.io_port, size: size, count: count)
            }
            let bytes = [UInt8](UnsafeRawBufferPointer(start: runMapping + offset, count: length))
            return .ioOut(port: exit.io_port, size: size, data: bytes)
        case CKVM_EXIT_MMIO:
            let length = min(Int(exit.mmio_length), 8)
            if exit.mmio_is_write != 0 {
                let bytes = withUnsafeBytes(of: exit.mmio_data) { Array($0.prefix(length)) }
                return .mmioWrite(address: exit.mmio_address, data: bytes)
            }
            pendingInput = .mmio(length: length)
            return .mmioRead(address: exit.mmio_address, size: length)
        case CKVM_EXIT_HLT: return .halt
        case CKVM_EXIT_SHUTDOWN: return .shutdown
        case CKVM_EXIT_FAIL_ENTRY: return .failEntry(reason: exit.fail_entry_reason)
        case CKVM_EXIT_INTERNAL_ERROR: return .internalError(suberror: exit.internal_suberror)
        case CKVM_EXIT_SYSTEM_EVENT: return .systemEvent(type: exit.system_event_type)
        case CKVM_EXIT_INTR: return .interrupted
        default: return .unhandled(reason: exit.reason)
        }
    }

    /// Supplies the bytes for the last `ioIn` or `mmioRead` exit; short input is zero-filled,
    /// extra input is dropped.
    public func completeInput(_ bytes: [UInt8]) {
        switch pendingInput {
        case .none:
            return
        case .io(let offset, let length):
            let destination = (runMapping + offset).assumingMemoryBound(to: UInt8.self)
            for i in 0..<length { destination[i] = i < bytes.count ? bytes[i] : 0 }
        case .mmio(let length):
            var data = [UInt8](repeating: 0, count: 8)
            for i in 0..<min(length, bytes.count) { data[i] = bytes[i] }
            ckvm_set_mmio_data(runArea, data, UInt32(length))
        }
        pendingInput = .none
    }

    /// Sets or clears `kvm_run.immediate_exit`, so the next (or a signal-interrupted) KVM_RUN
    /// returns at once. Used to stop a vCPU thread.
    public func setImmediateExit(_ on: Bool) { ckvm_set_immediate_exit(runArea, on ? 1 : 0) }

    public func registers() throws(KVMError) -> Registers {
        var r = kvm_regs()
        let raw = fd.rawValue
        try checkedIoctl("KVM_GET_REGS") { ckvm_ioctl_pointer(raw, CKVM_GET_REGS, &r) }
        return Registers(r)
    }

    public func setRegisters(_ registers: Registers) throws(KVMError) {
        var r = registers.kvm
        let raw = fd.rawValue
        try checkedIoctl("KVM_SET_REGS") { ckvm_ioctl_pointer(raw, CKVM_SET_REGS, &r) }
    }

    public func specialRegisters() throws(KVMError) -> SpecialRegisters {
        SpecialRegisters(try kvmSpecialRegisters())
    }

    public func setSpecialRegisters(_ registers: SpecialRegisters) throws(KVMError) {
        var s = try kvmSpecialRegisters()
        registers.apply(to: &s)
        let raw = fd.rawValue
        try checkedIoctl("KVM_SET_SREGS") { ckvm_ioctl_pointer(raw, CKVM_SET_SREGS, &s) }
    }

    private func kvmSpecialRegisters() throws(KVMError) -> kvm_sregs {
        var s = kvm_sregs()
        let raw = fd.rawValue
        try checkedIoctl("KVM_GET_SREGS") { ckvm_ioctl_pointer(raw, CKVM_GET_SREGS, &s) }
        return s
    }

    /// Sets the x87 control word and MXCSR (the rest of the FPU state starts zeroed).
    public func setFloatingPointControl(fcw: UInt16, mxcsr: UInt32) throws(KVMError) {
        var f = kvm_fpu()
        f.fcw = fcw
        f.mxcsr = mxcsr
        let raw = fd.rawValue
        try checkedIoctl("KVM_SET_FPU") { ckvm_ioctl_pointer(raw, CKVM_SET_FPU, &f) }
    }

    /// KVM_SET_CPUID2: what CPUID reports to this vCPU.
    public func setCPUID(_ entries: [CPUIDEntry]) throws(KVMError) {
        guard entries.count <= 4096, let block = ckvm_cpuid_alloc(UInt32(entries.count)) else {
            throw KVMError.invalidArgument("\(entries.count) CPUID entries")
        }
        defer { ckvm_free(block) }
        let base = (UnsafeMutableRawPointer(block) + MemoryLayout<kvm_cpuid2>.size)
            .bindMemory(to: kvm_cpuid_entry2.self, capacity: entries.count)
        for (i, e) in entries.enumerated() {
            var k = kvm_cpuid_entry2()
            k.function = e.function; k.index = e.index; k.flags = e.flags
            k.eax = e.eax; k.ebx = e.ebx; k.ecx = e.ecx; k.edx = e.edx
            base[i] = k
        }
        let raw = fd.rawValue
        try checkedIoctl("KVM_SET_CPUID2") { ckvm_ioctl_pointer(raw, CKVM_SET_CPUID2, block) }
    }

    /// KVM_SET_MSRS. KVM stops at the first MSR it refuses; that one is named in the error.
    public func setModelSpecificRegisters(_ msrs: [(index: UInt32, value: UInt64)]) throws(KVMError) {
        guard !msrs.isEmpty else { return }
        guard let block = ckvm_msrs_alloc(UInt32(msrs.count)) else { throw KVMError.invalidArgument("\(msrs.count) MSRs") }
        defer { ckvm_free(block) }
        let base = (UnsafeMutableRawPointer(block) + MemoryLayout<kvm_msrs>.size)
            .bindMemory(to: kvm_msr_entry.self, capacity: msrs.count)
        for (i, m) in msrs.enumerated() {
            var e = kvm_msr_entry()
            e.index = m.index
            e.data = m.value
            base[i] = e
        }
        let raw = fd.rawValue
        let written = try checkedIoctl("KVM_SET_MSRS") { ckvm_ioctl_pointer(raw, CKVM_SET_MSRS, block) }
        if Int(written) < msrs.count {
            let refused = String(msrs[Int(written)].index, radix: 16)
            throw KVMError.ioctl("KVM_SET_MSRS (MSR 0x\(refused) refused)", Errno(EINVAL))
        }
    }

    /// Reads, edits and writes back the in-kernel local APIC's registers.
    public func modifyLocalAPIC(_ edit: (inout LocalAPICRegisters) -> Void) throws(KVMError) {
        var regs = LocalAPICRegisters(state: kvm_lapic_state())
        let raw = fd.rawValue
        try checkedIoctl("KVM_GET_LAPIC") { ckvm_ioctl_pointer(raw, CKVM_GET_LAPIC, &regs.state) }
        edit(&regs)
        try checkedIoctl("KVM_SET_LAPIC") { ckvm_ioctl_pointer(raw, CKVM_SET_LAPIC, &regs.state) }
    }
}
