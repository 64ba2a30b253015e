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

    /// The longest command line `kernel` accepts that also fits our slot (less its NUL).
    public static func maximumCommandLineLength(kernel: BzImage) -> Int {
        min(Int(kernel.commandLineMax), Layout.commandLineCapacity - 1)
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

    /// Where the kernel's payload and the initrd go: the caller copies them in (straight from
    /// their files, so the VMM never holds a second copy of either).
    public struct Placement: Sendable {
        public let kernelPayload: UInt64
        public let initrd: UInt64?
    }

    /// Lays out an image held in memory (tests and small guests).
    public static func load(kernel: BzImage, kernelBytes: [UInt8], initrd: [UInt8]?, commandLine: String,
                            rsdpAddress: UInt64?, into memory: GuestMemory) throws(BootError) -> Setup {
        try load(kernel: kernel, initrdSize: initrd?.count, commandLine: commandLine, rsdpAddress: rsdpAddress,
                 into: memory) { placement throws(GuestMemoryError) in
            try memory.write(kernelBytes, from: kernel.payloadOffset, count: kernel.payloadSize, at: placement.kernelPayload)
            if let initrd, let address = placement.initrd { try memory.write(initrd, at: address) }
        }
    }

    /// Lays out the guest for boot: checks sizes, places the command line, zero page, GDT and
    /// page tables, and calls `copy` to put the kernel payload and initrd where `Placement` says.
    /// `memory` must be laid out by `Layout.ramRegions`.
    public static func load(kernel: BzImage, initrdSize: Int?, commandLine: String, rsdpAddress: UInt64?,
                            into memory: GuestMemory,
                            copy: (Placement) throws(GuestMemoryError) -> Void) throws(BootError) -> Setup {
        let ramBytes = memory.totalSize
        let initrdSize = initrdSize ?? 0
        let requiredMiB = minimumMemoryMiB(kernel: kernel, initrdSize: initrdSize)
        guard ramBytes >> 20 >= requiredMiB else {
            throw .memoryTooSmall(requestedMiB: ramBytes >> 20, requiredMiB: requiredMiB)
        }
        let cmdline = Array(commandLine.utf8)
        let maxLength = maximumCommandLineLength(kernel: kernel)
        guard cmdline.count <= maxLength else { throw .commandLineTooLong(length: cmdline.count, max: maxLength) }

        var initrdPlacement: UInt64?
        if initrdSize > 0 {
            initrdPlacement = try initrdAddress(kernel: kernel, size: initrdSize, ramBytes: ramBytes)
        }
        do throws(GuestMemoryError) {
            try copy(Placement(kernelPayload: Layout.kernelLoad, initrd: initrdPlacement))
            try memory.write(cmdline + [0], at: Layout.commandLine)
            let placedInitrd = initrdPlacement.map { (address: $0, size: UInt64(initrdSize)) }

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
