import CKVM

/// One CPUID leaf/subleaf as KVM describes it (struct kvm_cpuid_entry2).
public struct CPUIDEntry: Equatable, Sendable {
    public var function: UInt32
    public var index: UInt32
    public var flags: UInt32
    public var eax: UInt32
    public var ebx: UInt32
    public var ecx: UInt32
    public var edx: UInt32

    public init(function: UInt32, index: UInt32 = 0, flags: UInt32 = 0,
                eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0, edx: UInt32 = 0) {
        self.function = function; self.index = index; self.flags = flags
        self.eax = eax; self.ebx = ebx; self.ecx = ecx; self.edx = edx
    }

    static func decode(_ block: UnsafeMutablePointer<kvm_cpuid2>) -> [CPUIDEntry] {
        let count = Int(block.pointee.nent)
        let raw = UnsafeMutableRawPointer(block) + MemoryLayout<kvm_cpuid2>.size
        let entries = raw.bindMemory(to: kvm_cpuid_entry2.self, capacity: count)
        return (0..<count).map { i in
            let e = entries[i]
            return CPUIDEntry(function: e.function, index: e.index, flags: e.flags,
                              eax: e.eax, ebx: e.ebx, ecx: e.ecx, edx: e.edx)
        }
    }
}
