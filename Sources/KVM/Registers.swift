import CKVM

/// General-purpose registers (struct kvm_regs).
public struct Registers: Equatable, Sendable {
    public var rax: UInt64 = 0, rbx: UInt64 = 0, rcx: UInt64 = 0, rdx: UInt64 = 0
    public var rsi: UInt64 = 0, rdi: UInt64 = 0, rsp: UInt64 = 0, rbp: UInt64 = 0
    public var r8: UInt64 = 0, r9: UInt64 = 0, r10: UInt64 = 0, r11: UInt64 = 0
    public var r12: UInt64 = 0, r13: UInt64 = 0, r14: UInt64 = 0, r15: UInt64 = 0
    public var rip: UInt64 = 0, rflags: UInt64 = 0x2
    public init() {}

    init(_ r: kvm_regs) {
        rax = r.rax; rbx = r.rbx; rcx = r.rcx; rdx = r.rdx
        rsi = r.rsi; rdi = r.rdi; rsp = r.rsp; rbp = r.rbp
        r8 = r.r8; r9 = r.r9; r10 = r.r10; r11 = r.r11
        r12 = r.r12; r13 = r.r13; r14 = r.r14; r15 = r.r15
        rip = r.rip; rflags = r.rflags
    }

    var kvm: kvm_regs {
        kvm_regs(rax: rax, rbx: rbx, rcx: rcx, rdx: rdx, rsi: rsi, rdi: rdi, rsp: rsp, rbp: rbp,
                 r8: r8, r9: r9, r10: r10, r11: r11, r12: r12, r13: r13, r14: r14, r15: r15,
                 rip: rip, rflags: rflags)
    }
}

/// A segment register's hidden descriptor cache (struct kvm_segment).
public struct Segment: Equatable, Sendable {
    public var base: UInt64 = 0
    public var limit: UInt32 = 0
    public var selector: UInt16 = 0
    public var type: UInt8 = 0
    public var present: Bool = false
    public var dpl: UInt8 = 0
    public var defaultSize: Bool = false  // D/B
    public var system: Bool = false       // S: 1 = code/data
    public var long: Bool = false         // L
    public var granularity: Bool = false  // G
    public var available: Bool = false    // AVL
    public var unusable: Bool = false
    public init() {}

    init(_ s: kvm_segment) {
        base = s.base; limit = s.limit; selector = s.selector; type = s.type
        present = s.present != 0; dpl = s.dpl; defaultSize = s.db != 0; system = s.s != 0
        long = s.l != 0; granularity = s.g != 0; available = s.avl != 0; unusable = s.unusable != 0
    }

    var kvm: kvm_segment {
        var s = kvm_segment()
        s.base = base; s.limit = limit; s.selector = selector; s.type = type
        s.present = present ? 1 : 0; s.dpl = dpl; s.db = defaultSize ? 1 : 0; s.s = system ? 1 : 0
        s.l = long ? 1 : 0; s.g = granularity ? 1 : 0; s.avl = available ? 1 : 0; s.unusable = unusable ? 1 : 0
        return s
    }
}

/// GDTR / IDTR.
public struct DescriptorTable: Equatable, Sendable {
    public var base: UInt64 = 0
    public var limit: UInt16 = 0
    public init(base: UInt64 = 0, limit: UInt16 = 0) { self.base = base; self.limit = limit }
}

/// Segment, control and descriptor-table registers (struct kvm_sregs, less the pending
/// interrupt bitmap, which is preserved across a get/modify/set).
public struct SpecialRegisters: Equatable, Sendable {
    public var cs = Segment(), ds = Segment(), es = Segment(), fs = Segment(), gs = Segment(), ss = Segment()
    public var tr = Segment(), ldt = Segment()
    public var gdt = DescriptorTable(), idt = DescriptorTable()
    public var cr0: UInt64 = 0, cr2: UInt64 = 0, cr3: UInt64 = 0, cr4: UInt64 = 0, cr8: UInt64 = 0
    public var efer: UInt64 = 0, apicBase: UInt64 = 0
    public init() {}

    init(_ s: kvm_sregs) {
        cs = Segment(s.cs); ds = Segment(s.ds); es = Segment(s.es); fs = Segment(s.fs)
        gs = Segment(s.gs); ss = Segment(s.ss); tr = Segment(s.tr); ldt = Segment(s.ldt)
        gdt = DescriptorTable(base: s.gdt.base, limit: s.gdt.limit)
        idt = DescriptorTable(base: s.idt.base, limit: s.idt.limit)
        cr0 = s.cr0; cr2 = s.cr2; cr3 = s.cr3; cr4 = s.cr4; cr8 = s.cr8; efer = s.efer; apicBase = s.apic_base
    }

    func apply(to s: inout kvm_sregs) {
        s.cs = cs.kvm; s.ds = ds.kvm; s.es = es.kvm; s.fs = fs.kvm; s.gs = gs.kvm; s.ss = ss.kvm
        s.tr = tr.kvm; s.ldt = ldt.kvm
        s.gdt.base = gdt.base; s.gdt.limit = gdt.limit
        s.idt.base = idt.base; s.idt.limit = idt.limit
        s.cr0 = cr0; s.cr2 = cr2; s.cr3 = cr3; s.cr4 = cr4; s.cr8 = cr8; s.efer = efer; s.apic_base = apicBase
    }
}

/// The local APIC register page (struct kvm_lapic_state), 32-bit registers at byte offsets.
public struct LocalAPICRegisters: Sendable {
    var state: kvm_lapic_state

    public subscript(offset: UInt32) -> UInt32 {
        get { withUnsafePointer(to: state) { ckvm_lapic_get($0, offset) } }
        set { ckvm_lapic_set(&state, offset, newValue) }
    }
}
