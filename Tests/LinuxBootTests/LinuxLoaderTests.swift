import GuestMemory
import Testing
@testable import LinuxBoot

@Suite struct LinuxLoaderTests {
    let kernelBytes = makeBzImage(payload: 10_000, initSize: 0x200_0000, prefAddress: 0x100_0000)
    var kernel: BzImage { try! BzImage(kernelBytes) }

    func memory(_ mib: UInt64) throws -> GuestMemory { try GuestMemory(layout: Layout.ramRegions(bytes: mib << 20)) }

    @Test func loadsKernelCommandLineZeroPageAndEntryState() throws {
        let mem = try memory(128)
        let initrd = [UInt8](repeating: 0x5a, count: 5000)
        let setup = try LinuxLoader.load(kernel: kernel, kernelBytes: kernelBytes, initrd: initrd, commandLine: "console=ttyS0",
                                         rsdpAddress: 0xe0000, into: mem)
        // The protected-mode payload sits at 1 MiB, byte for byte.
        #expect(try mem.read(at: 0x100000, count: 16) == (0..<16).map { UInt8($0) })
        #expect(try mem.read(at: 0x100000 + 9999, count: 1) == [UInt8(truncatingIfNeeded: 9999)])
        #expect(try mem.read(at: Layout.commandLine, count: 14) == Array("console=ttyS0".utf8) + [0])
        #expect(try mem.load(UInt32.self, at: Layout.zeroPage + 0x228) == UInt32(Layout.commandLine))
        // The initrd is page-aligned, as high as it fits, and its bytes are there.
        let placed = try #require(setup.initrd)
        #expect(placed.address % 4096 == 0)
        #expect(placed.address + placed.size <= 128 << 20)
        #expect(placed.address + 4096 + placed.size > 128 << 20)
        #expect(try mem.read(at: placed.address, count: 5000) == initrd)
        #expect(try mem.load(UInt32.self, at: Layout.zeroPage + 0x218) == UInt32(placed.address))
        #expect(setup.cpu.rip == 0x100200)
        #expect(setup.cpu.rsi == Layout.zeroPage)
        #expect(setup.cpu.cr3 == Layout.pml4)
        #expect(try mem.load(UInt64.self, at: Layout.gdt + 16) == LongMode.gdt[2])
        #expect(try mem.load(UInt64.self, at: Layout.pml4) == Layout.pdpt | 3)
    }

    @Test func minimumMemoryCoversDecompressionAndInitrd() {
        // 16 MiB preferred address + 32 MiB init_size + 16 MiB margin = 64 MiB; + 1 MiB initrd.
        #expect(LinuxLoader.minimumMemoryMiB(kernel: kernel, initrdSize: 0) == 64)
        #expect(LinuxLoader.minimumMemoryMiB(kernel: kernel, initrdSize: 1 << 20) == 65)
    }

    @Test func refusesTooLittleMemory() throws {
        let mem = try memory(63)
        #expect(throws: BootError.memoryTooSmall(requestedMiB: 63, requiredMiB: 64)) {
            try LinuxLoader.load(kernel: kernel, kernelBytes: kernelBytes, initrd: nil, commandLine: "", rsdpAddress: nil, into: mem)
        }
    }

    @Test func refusesAnInitrdAboveTheInitrdLimit() {
        // initrd_addr_max of 40 MiB leaves nothing above the kernel's 48 MiB end.
        let k = try! BzImage(makeBzImage(initSize: 0x200_0000, initrdAddrMax: 0x27f_ffff))
        #expect(throws: BootError.initrdTooLarge(size: 4096, availableBytes: 0)) {
            try LinuxLoader.initrdAddress(kernel: k, size: 4096, ramBytes: 256 << 20)
        }
        #expect(throws: BootError.self) {
            try LinuxLoader.initrdAddress(kernel: kernel, size: 300 << 20, ramBytes: 256 << 20)
        }
    }

    @Test func refusesACommandLineLongerThanTheKernelAccepts() throws {
        let bytes = makeBzImage(cmdlineSize: 16)
        let k = try BzImage(bytes)
        let mem = try memory(128)
        #expect(throws: BootError.commandLineTooLong(length: 17, max: 16)) {
            try LinuxLoader.load(kernel: k, kernelBytes: bytes, initrd: nil, commandLine: String(repeating: "x", count: 17), rsdpAddress: nil, into: mem)
        }
    }
}
