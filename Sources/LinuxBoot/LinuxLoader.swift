import GuestMemory

/// Places a bzImage, its initrd, command line, zero page, GDT and page tables in guest memory
/// and returns the boot vCPU's entry state (Linux x86 boot protocol, 64-bit entry).
public enum LinuxLoader {
    /// What the kernel needs above its load address that is not its initrd: the decompressor's
    /// buffer (init_size, from the preferred address when relocated there) plus working room for
    /// early allocations.
    static let bootWorkingMargin: UInt64 = 16 << 20

    /// The least RAM, in MiB, that can boot `kernel` with an initrd of `initrdSize` bytes.
    public static func minimumMemoryMiB(kernel: BzImage, initrdSize: Int) -> UInt64 {
        let kernelEnd = max(Layout.kernelLoad + UInt64(kernel.payloadSize),
                            max(kernel.preferredAddress, Layout.kernelLoad) + UInt64(kernel.initSize))
        let total = kernelEnd + alignUp(UInt64(initrdSize), 4096) + bootWorkingMargin
        return alignUp(total, 1 << 20) >> 20
    }

    /// Where the initrd goes: as high as possible below min(initrd_addr_max, top of low RAM),
    /// page-aligned, and clear of the region the kernel decompresses into.
    public static func initrdAddress(kernel: BzImage, size: Int, ramBytes: UInt64) throws(BootError) -> UInt64 {
        let lowTop = Layout.ramRegions(bytes: ramBytes)[0].size
        let limit = min(UInt64(kernel.initrdAddressMax) + 1, lowTop)
        let kernelEnd = max(kernel.preferredAddress, Layout.kernelLoad) + UInt64(kernel.initSize)
        let available = limit > kernelEnd ? limit - kernelEnd : 0
        guard UInt64(size) <= available else { throw .initrdTooLarge(size: size, availableBytes: available) }
        return alignDown(limit - UInt64(size), 4096)
    }

    public struct Setup: Sendable {
        public var cpu: BootCPUState
        public var initrd: (address: UInt64, size: UInt64)?
        public var kernelLoadAddress: UInt64
    }

    /// Lays out the guest for boot. `memory` must be laid out by `Layout.ramRegions`.
    public static func load(kernel: BzImage, initrd: [UInt8]?, commandLine: String,
                            rsdpAddress: UInt64?, into memory: GuestMemory) throws(BootError) -> Setup {
        let ramBytes = memory.totalSize
        let requiredMiB = minimumMemoryMiB(kernel: kernel, initrdSize: initrd?.count ?? 0)
        guard ramBytes >> 20 >= requiredMiB else {
            throw .memoryTooSmall(requestedMiB: ramBytes >> 20, requiredMiB: requiredMiB)
        }
        let cmdline = Array(commandLine.utf8)
        let maxLength = min(Int(kernel.commandLineMax), Layout.commandLineCapacity - 1)
        guard cmdline.count <= maxLength else { throw .commandLineTooLong(length: cmdline.count, max: maxLength) }

        var initrdPlacement: UInt64?
        if let initrd, !initrd.isEmpty {
            initrdPlacement = try initrdAddress(kernel: kernel, size: initrd.count, ramBytes: ramBytes)
        }
        do throws(GuestMemoryError) {
            try memory.write(kernel.bytes, from: kernel.payloadOffset, count: kernel.payloadSize, at: Layout.kernelLoad)
            try memory.write(cmdline + [0], at: Layout.commandLine)

            var placedInitrd: (address: UInt64, size: UInt64)?
            if let initrd, let address = initrdPlacement {
                try memory.write(initrd, at: address)
                placedInitrd = (address, UInt64(initrd.count))
            }

            let params = BootParams(commandLineAddress: Layout.commandLine, initrd: placedInitrd,
                                    e820: E820Entry.map(ramBytes: ramBytes), rsdpAddress: rsdpAddress)
            try memory.write(params.encode(for: kernel), at: Layout.zeroPage)
            try memory.write(LongMode.littleEndianBytes(LongMode.gdt), at: Layout.gdt)
            try memory.zero(at: Layout.idt, count: 8)
            for table in LongMode.identityPageTables() { try memory.write(table.page, at: table.address) }

            let cpu = BootCPUState(rip: Layout.kernelLoad + 0x200, rsi: Layout.zeroPage, rsp: Layout.bootStack)
            return Setup(cpu: cpu, initrd: placedInitrd, kernelLoadAddress: Layout.kernelLoad)
        } catch {
            throw .memory(error)
        }
    }
}

func alignUp(_ v: UInt64, _ a: UInt64) -> UInt64 { (v + a - 1) / a * a }
func alignDown(_ v: UInt64, _ a: UInt64) -> UInt64 { v / a * a }
