import GuestMemory
import KVM

/// A tiny VM for tier-2 tests: `memorySize` bytes of RAM at guest-physical 0 and hand-made
/// 16-bit real-mode code. No irqchip, so HLT exits to us.
final class RealModeGuest {
    let system: KVMSystem
    let vm: VirtualMachine
    let memory: GuestMemory
    private(set) var vcpus: [VCPU] = []

    init(memorySize: UInt64 = 0x10000) throws {
        system = try KVMSystem()
        vm = try system.createVirtualMachine()
        memory = try GuestMemory(layout: [(0, memorySize)])
        let region = memory.regions[0]
        try vm.setUserMemoryRegion(slot: 0, guestAddress: 0, size: region.size, hostAddress: region.host)
    }

    /// Adds a vCPU in flat real mode (CS base 0) starting at `entry`.
    @discardableResult
    func addVCPU(entry: UInt64) throws -> VCPU {
        let vcpu = try vm.createVCPU(id: vcpus.count)
        var s = try vcpu.specialRegisters()
        s.cs.base = 0
        s.cs.selector = 0
        try vcpu.setSpecialRegisters(s)
        var r = Registers()
        r.rip = entry
        r.rflags = 0x2
        try vcpu.setRegisters(r)
        vcpus.append(vcpu)
        return vcpu
    }

    func load(_ code: [UInt8], at address: UInt64) throws { try memory.write(code, at: address) }

    /// Runs `vcpu` until it halts, answering every read with `answer` and recording exits.
    func runToHalt(_ vcpu: VCPU, answer: (VCPUExit) -> [UInt8] = { _ in [] }, limit: Int = 100) throws -> [VCPUExit] {
        var exits: [VCPUExit] = []
        for _ in 0..<limit {
            let exit = try vcpu.run()
            exits.append(exit)
            switch exit {
            case .ioIn, .mmioRead: vcpu.completeInput(answer(exit))
            case .halt: return exits
            case .ioOut, .mmioWrite, .interrupted: continue
            default: return exits
            }
        }
        return exits
    }
}
