import Testing
import KVM
@testable import VMM

@Suite struct CPUSetupTests {
    private let host = [
        CPUIDEntry(function: 0x0, eax: 0x1f, ebx: 0x756e_6547),
        CPUIDEntry(function: 0x1, eax: 0x906ea, ebx: 0xaabb_0800, ecx: 0x7ffa_3203, edx: 0x078b_fbff),
        CPUIDEntry(function: 0xb, index: 0, eax: 1, ebx: 1, ecx: 0x100, edx: 0xff),
        CPUIDEntry(function: 0xb, index: 1, eax: 4, ebx: 8, ecx: 0x201, edx: 0xff),
        CPUIDEntry(function: 0x1f, index: 0, eax: 1, ebx: 1, ecx: 0x100, edx: 0xff),
        CPUIDEntry(function: 0x8000_0001, ecx: 0x121, edx: 0x2c10_0800),
    ]

    @Test func leafOneCarriesTheAPICIdCountAndHypervisorBit() throws {
        let leaves = CPUSetup.cpuid(host, index: 3, count: 4)
        let leaf1 = try #require(leaves.first { $0.function == 1 })
        #expect(leaf1.ebx == 0x0304_0800)  // APIC id 3, 4 logical CPUs, CLFLUSH size and brand kept
        #expect(leaf1.ecx == 0xfffa_3203)  // hypervisor bit 31 on top of the host's bits
        #expect(leaf1.edx == 0x178b_fbff)  // HTT: more than one logical processor
        #expect(leaf1.eax == 0x906ea)
    }

    @Test func singleVCPUGetsNoHTT() throws {
        var noHTT = host
        noHTT[1].edx &= ~(1 << 28)
        let leaf1 = try #require(CPUSetup.cpuid(noHTT, index: 0, count: 1).first { $0.function == 1 })
        #expect(leaf1.ebx == 0x0001_0800)
        #expect(leaf1.edx & (1 << 28) == 0)
    }

    @Test func topologyLeavesGetTheX2APICId() {
        let leaves = CPUSetup.cpuid(host, index: 7, count: 8)
        for (before, after) in zip(host, leaves) where [0xb, 0x1f].contains(before.function) {
            var expected = before
            expected.edx = 7
            #expect(after == expected)
        }
    }

    @Test func otherLeavesAreUntouched() {
        let leaves = CPUSetup.cpuid(host, index: 1, count: 2)
        #expect(leaves.count == host.count)
        for (before, after) in zip(host, leaves) where ![0x1, 0xb, 0x1f].contains(before.function) {
            #expect(after == before)
        }
    }

    /// LVT delivery mode is bits 8-10 (Intel SDM vol. 3 §11.5.1); vector, mask and the rest stay.
    @Test func deliveryModeReplacesBitsEightToTen() {
        #expect(CPUSetup.deliveryMode(0x0001_00ff, CPUSetup.extINT) == 0x0001_07ff)
        #expect(CPUSetup.deliveryMode(0x0001_07ff, CPUSetup.nmi) == 0x0001_04ff)
        #expect(CPUSetup.deliveryMode(0xffff_ffff, 0) == 0xffff_f8ff)
        #expect(CPUSetup.deliveryMode(0, 0x7) == 0x700)
    }
}
