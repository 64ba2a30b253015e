import Testing
@testable import LinuxBoot

func le<T: FixedWidthInteger>(_ bytes: [UInt8], _ offset: Int, _: T.Type) -> T {
    var v: T = 0
    for i in 0..<MemoryLayout<T>.size { v |= T(bytes[offset + i]) << (8 * i) }
    return v
}

@Suite struct BootParamsTests {
    let kernel = try! BzImage(makeBzImage())

    @Test func copiesTheSetupHeaderAndFillsLoaderFields() {
        let params = BootParams(commandLineAddress: 0x20000, initrd: (0x7000_0000, 0x12345),
                                e820: E820Entry.map(ramBytes: 256 << 20), rsdpAddress: 0xe0000)
        let page = params.encode(for: kernel)
        #expect(page.count == 4096)
        #expect(le(page, 0x1fe, UInt16.self) == 0xAA55)
        #expect(le(page, 0x202, UInt32.self) == 0x5372_6448)
        #expect(page[0x210] == 0xff)                             // type_of_loader
        #expect(page[0x211] == 0x81)                             // LOADED_HIGH | CAN_USE_HEAP
        #expect(le(page, 0x228, UInt32.self) == 0x20000)         // cmd_line_ptr
        #expect(le(page, 0x218, UInt32.self) == 0x7000_0000)     // ramdisk_image
        #expect(le(page, 0x21c, UInt32.self) == 0x12345)         // ramdisk_size
        #expect(le(page, 0x070, UInt64.self) == 0xe0000)         // acpi_rsdp_addr
        #expect(le(page, 0x1fa, UInt16.self) == 0xffff)          // vid_mode
        #expect(le(page, 0x238, UInt32.self) == 2047)            // cmdline_size, from the image
    }

    @Test func encodesTheE820Table() {
        let map = E820Entry.map(ramBytes: 256 << 20)
        let page = BootParams(commandLineAddress: 0x20000, initrd: nil, e820: map, rsdpAddress: nil).encode(for: kernel)
        #expect(Int(page[0x1e8]) == map.count)
        for (i, e) in map.enumerated() {
            let o = 0x2d0 + 20 * i
            #expect(le(page, o, UInt64.self) == e.address)
            #expect(le(page, o + 8, UInt64.self) == e.size)
            #expect(le(page, o + 16, UInt32.self) == e.kind.rawValue)
        }
        #expect(le(page, 0x218, UInt32.self) == 0)  // no initrd
    }

    @Test func e820CoversRAMAndReservesTheBIOSArea() {
        let small = E820Entry.map(ramBytes: 256 << 20)
        #expect(small == [
            E820Entry(address: 0, size: 0x9fc00, kind: .ram),
            E820Entry(address: 0xe0000, size: 0x20000, kind: .reserved),
            E820Entry(address: 0x100000, size: (256 << 20) - 0x100000, kind: .ram),
        ])
        // Above 3 GiB the rest of RAM moves to 4 GiB, leaving the MMIO hole.
        let big = E820Entry.map(ramBytes: 4 << 30)
        #expect(big.last == E820Entry(address: 1 << 32, size: 1 << 30, kind: .ram))
        #expect(big[2] == E820Entry(address: 0x100000, size: 0xc000_0000 - 0x100000, kind: .ram))
        let ram = big.filter { $0.kind == .ram }.reduce(UInt64(0)) { $0 + $1.size }
        #expect(ram == (4 << 30) - 0x100000 + 0x9fc00)
    }
}

@Suite struct LongModeTests {
    @Test func gdtDescriptorsMatchTheSDMEncoding() {
        // Flat 64-bit code: base 0, limit 0xfffff, access 0x9b, flags G|L.
        #expect(LongMode.gdt[2] == 0x00af_9b00_0000_ffff)
        #expect(LongMode.gdt[3] == 0x00cf_9300_0000_ffff)
        #expect(LongMode.descriptor(flags: 0x808b, base: 0x1234_5678, limit: 0xabcde) == 0x128a_8b34_5678_bcde)
    }

    @Test func segmentsAreTheBootProtocolsFlatSelectors() {
        let code = LongMode.segment(gdtIndex: 2)
        #expect(code.selector == LongMode.codeSelector)
        #expect(code.long && code.present && code.granularity && code.codeOrData && !code.defaultSize)
        #expect(code.limit == 0xffff_ffff && code.base == 0 && code.type == 0xb)
        let data = LongMode.segment(gdtIndex: 3)
        #expect(data.selector == LongMode.dataSelector)
        #expect(data.defaultSize && !data.long && data.type == 0x3)
        let tss = LongMode.segment(gdtIndex: 4)
        #expect(!tss.codeOrData && tss.type == 0xb && tss.selector == 0x20)
    }

    @Test func pageTablesIdentityMapFourGiB() {
        let tables = LongMode.identityPageTables()
        #expect(tables.count == 2 + 4)
        let pml4 = tables[0]
        #expect(pml4.address == Layout.pml4)
        #expect(le(pml4.page, 0, UInt64.self) == Layout.pdpt | 0x3)
        #expect(le(pml4.page, 8, UInt64.self) == 0)
        let pdpt = tables[1].page
        for g in 0..<4 { #expect(le(pdpt, 8 * g, UInt64.self) == (Layout.pageDirectories + UInt64(g) * 0x1000) | 0x3) }
        // Every 2 MiB page maps to itself: the last entry of the last directory is 4 GiB − 2 MiB.
        let last = tables[5].page
        #expect(le(last, 511 * 8, UInt64.self) == (0xffe0_0000 | 0x83))
        #expect(le(tables[2].page, 8, UInt64.self) == (0x20_0000 | 0x83))
        #expect(tables.allSatisfy { $0.page.count == 4096 })
    }
}
