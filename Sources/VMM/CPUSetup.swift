import KVM
import LinuxBoot

/// Per-vCPU register, CPUID, MSR and local-APIC set-up for an x86-64 Linux guest.
enum CPUSetup {
    /// CPUID for vCPU `index` of `count`: the host-supported leaves with this vCPU's APIC id
    /// (leaf 1 EBX[31:24], leaves 0xB/0x1F EDX) and the hypervisor bit (leaf 1 ECX[31]) set.
    static func cpuid(_ supported: [CPUIDEntry], index: Int, count: Int) -> [CPUIDEntry] {
        supported.map { entry in
            var e = entry
            switch e.function {
            case 0x1:
                e.ebx = (e.ebx & 0x0000_ffff) | UInt32(index) << 24 | UInt32(min(count, 255)) << 16
                e.ecx |= 1 << 31
                // HTT: more than one logical processor in the package.
                if count > 1 { e.edx |= 1 << 28 } else { e.edx &= ~(1 << 28) }
            case 0xb, 0x1f:
                e.edx = UInt32(index)
            default:
                break
            }
            return e
        }
    }

    /// MSRs at reset, as Linux expects them at its 64-bit entry (Intel SDM vol. 4 numbers).
    static let bootMSRs: [(index: UInt32, value: UInt64)] = [
        (0x174, 0),          // IA32_SYSENTER_CS
        (0x175, 0),          // IA32_SYSENTER_ESP
        (0x176, 0),          // IA32_SYSENTER_EIP
        (0xc000_0081, 0),    // STAR
        (0xc000_0082, 0),    // LSTAR
        (0xc000_0083, 0),    // CSTAR
        (0xc000_0084, 0),    // SFMASK
        (0xc000_0102, 0),    // KERNEL_GS_BASE
        (0x10, 0),           // TSC
        (0x1a0, 1),          // IA32_MISC_ENABLE: fast strings
        (0x2ff, 1 << 11 | 6) // IA32_MTRR_DEF_TYPE: MTRRs on, default write-back
    ]

    /// Local APIC LVT registers (Intel SDM vol. 3 §11.5.1) and their delivery-mode field.
    static let lvtLINT0: UInt32 = 0x350
    static let lvtLINT1: UInt32 = 0x360
    static func deliveryMode(_ register: UInt32, _ mode: UInt32) -> UInt32 { (register & ~0x700) | mode << 8 }
    static let extINT: UInt32 = 0x7
    static let nmi: UInt32 = 0x4

    static func configure(_ vcpu: VCPU, supportedCPUID: [CPUIDEntry], count: Int) throws(KVMError) {
        try vcpu.setCPUID(cpuid(supportedCPUID, index: vcpu.id, count: count))
        try vcpu.setModelSpecificRegisters(bootMSRs)
        // The PC wiring: LINT0 takes the 8259's ExtINT, LINT1 takes NMI.
        try vcpu.modifyLocalAPIC { apic in
            apic[lvtLINT0] = deliveryMode(apic[lvtLINT0], extINT)
            apic[lvtLINT1] = deliveryMode(apic[lvtLINT1], nmi)
        }
        // x87 control word and MXCSR at their reset values.
        try vcpu.setFloatingPointControl(fcw: 0x37f, mxcsr: 0x1f80)
    }

    /// The boot vCPU's long-mode state at the kernel's 64-bit entry.
    static func enterLinux(_ vcpu: VCPU, state: BootCPUState) throws(KVMError) {
        var s = try vcpu.specialRegisters()
        s.cs = segment(state.code)
        for keyPath in [\SpecialRegisters.ds, \.es, \.fs, \.gs, \.ss] { s[keyPath: keyPath] = segment(state.data) }
        s.tr = segment(state.tss)
        s.gdt = DescriptorTable(base: state.gdt.base, limit: state.gdt.limit)
        s.idt = DescriptorTable(base: state.idt.base, limit: state.idt.limit)
        s.cr0 = state.cr0
        s.cr3 = state.cr3
        s.cr4 = state.cr4
        s.efer = state.efer
        try vcpu.setSpecialRegisters(s)

        var r = Registers()
        r.rip = state.rip
        r.rsi = state.rsi
        r.rsp = state.rsp
        r.rbp = state.rsp
        r.rflags = state.rflags
        try vcpu.setRegisters(r)
    }

    static func segment(_ s: SegmentState) -> Segment {
        var k = Segment()
        k.base = s.base; k.limit = s.limit; k.selector = s.selector; k.type = s.type
        k.present = s.present; k.dpl = s.dpl; k.defaultSize = s.defaultSize; k.system = s.codeOrData
        k.long = s.long; k.granularity = s.granularity
        return k
    }
}
