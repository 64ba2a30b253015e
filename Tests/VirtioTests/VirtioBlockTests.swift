import Devices
import Glibc
import GuestMemory
import Testing

/// virtio-blk (virtio 1.2 §5.2) over a real temporary file, driven the way Linux's virtio_blk.c
/// drives it: every request type with byte-exact results on the file and in guest memory.
@Suite struct VirtioBlockTests {
    // MARK: Identity, features, configuration (§5.2.1-§5.2.5)

    @Test func identifiesAsABlockDeviceWithOneQueue() throws {
        let guest = try BlockGuest()
        #expect(guest.read(Reg.deviceID) == 2)
        guest.write(Reg.queueSel, 0)
        #expect(guest.read(Reg.queueNumMax) == 256)
        guest.write(Reg.queueSel, 1)
        #expect(guest.read(Reg.queueNumMax) == 0)
    }

    @Test func aWritableDiskOffersDiscardAndWriteZeroesAndNotRO() throws {
        let offered = try BlockGuest().deviceFeatures()
        let expected = Blk.version1 | Blk.eventIndex | Blk.indirect | Blk.flush | Blk.segMax | Blk.sizeMax | Blk.blockSize
            | Blk.discard | Blk.writeZeroes
        #expect(offered == expected)
    }

    @Test(arguments: [(true, true), (false, false), (false, true)])
    func aReadOnlyDiskOffersROAndNeitherDiscardNorWriteZeroes(writable: Bool, readOnly: Bool) throws {
        // Read-only by configuration, by its descriptor, or both.
        let offered = try BlockGuest(writable: writable, readOnly: readOnly).deviceFeatures()
        let expected = Blk.version1 | Blk.eventIndex | Blk.indirect | Blk.flush | Blk.segMax | Blk.sizeMax | Blk.blockSize
            | Blk.readOnly
        #expect(offered == expected)
    }

    /// §5.2.4: capacity, size_max, seg_max, (geometry), blk_size, (topology, writeback,
    /// num_queues), the discard and write-zeroes fields, write_zeroes_may_unmap.
    @Test func configurationSpaceBytes() throws {
        let guest = try BlockGuest(sectors: 0x1_0203, sparse: true)
        func config(_ offset: UInt64, _ width: Int) -> UInt32 { guest.read(Reg.config + offset, width: width) }
        var bytes: [UInt8] = []
        for offset in 0..<64 { bytes.append(UInt8(config(UInt64(offset), 1))) }
        var expected = [UInt8](repeating: 0, count: 64)
        func put(_ value: UInt64, _ width: Int, at offset: Int) {
            for i in 0..<width { expected[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
        put(0x1_0203, 8, at: 0)  // capacity in sectors
        put(128 * 1024, 4, at: 8)  // size_max
        put(128, 4, at: 12)  // seg_max
        put(512, 4, at: 20)  // blk_size
        put(1 << 23, 4, at: 36)  // max_discard_sectors
        put(16, 4, at: 40)  // max_discard_seg
        put(8, 4, at: 44)  // discard_sector_alignment
        put(1 << 15, 4, at: 48)  // max_write_zeroes_sectors
        put(1, 4, at: 52)  // max_write_zeroes_seg
        put(1, 1, at: 56)  // write_zeroes_may_unmap
        #expect(bytes == expected)
        // Any width the transport allows reads the same bytes.
        #expect(config(0, 4) == 0x1_0203 && config(4, 4) == 0)
        #expect(config(0, 2) == 0x0203 && config(2, 2) == 0x0001)
        #expect(config(12, 4) == 128 && config(14, 2) == 0)
        #expect(config(20, 2) == 512)
        #expect(config(0x100 - 4, 4) == 0)  // past the structure
        // Writes are ignored.
        guest.write(Reg.config, 0xffff_ffff)
        #expect(config(0, 4) == 0x1_0203)
    }

    @Test func aReadOnlyDiskAdvertisesNoDiscardOrWriteZeroesLimits() throws {
        let guest = try BlockGuest(readOnly: true)
        #expect(guest.read(Reg.config, width: 4) == 64)
        for offset: UInt64 in stride(from: 36, through: 56, by: 4) { #expect(guest.read(Reg.config + offset) == 0) }
    }

    // MARK: IN and OUT (§5.2.6)

    @Test func aReadCopiesTheSectorsIntoGuestMemory() throws {
        let guest = try BlockGuest()
        guest.probe()
        guest.poison(BlockGuest.dataArea, 4096)
        let (reply, data) = guest.read(sector: 3, count: 3)
        #expect(reply == BlockReply(status: Blk.ok, used: 3 * 512 + 1))
        #expect(data == TemporaryDisk.pattern(3 * 512..<6 * 512))
        #expect(guest.bytes(BlockGuest.dataArea + 3 * 512, 16).allSatisfy { $0 == BlockGuest.sentinel })
        #expect(guest.device.stats.bytesRead == 3 * 512)
        #expect(guest.device.stats.requests[.read] == 1)
        #expect(guest.irq.count == 1)
    }

    @Test func aReadIntoSeveralBuffersFillsThemInOrder() throws {
        let guest = try BlockGuest()
        guest.probe()
        let a: UInt64 = 0x20_0000, b: UInt64 = 0x30_0000, c: UInt64 = 0x40_0000
        for address in [a, b, c] { guest.poison(address, 2048) }
        let reply = guest.request([.readable(guest.header(Blk.typeIn, sector: 10), 16), .writable(a, 512), .writable(b, 1024),
                                   .writable(c, 512), guest.statusBuffer()])
        #expect(reply == BlockReply(status: Blk.ok, used: 2049))
        #expect(guest.bytes(a, 512) == TemporaryDisk.pattern(5120..<5632))
        #expect(guest.bytes(b, 1024) == TemporaryDisk.pattern(5632..<6656))
        #expect(guest.bytes(c, 512) == TemporaryDisk.pattern(6656..<7168))
        #expect(guest.bytes(a + 512, 16).allSatisfy { $0 == BlockGuest.sentinel })
    }

    @Test func theLastSectorCanBeReadAndWritten() throws {
        let guest = try BlockGuest(sectors: 64)
        guest.probe()
        #expect(guest.read(sector: 63, count: 1).1 == TemporaryDisk.pattern(63 * 512..<64 * 512))
        let data = (0..<512).map { UInt8($0 & 0x7f) }
        #expect(guest.write(sector: 63, data) == BlockReply(status: Blk.ok, used: 1))
        #expect(Array(guest.disk.contents[(63 * 512)...]) == data)
    }

    @Test func aWriteChangesExactlyItsSectors() throws {
        let guest = try BlockGuest()
        guest.probe()
        let first = [UInt8](repeating: 0x11, count: 512), second = [UInt8](repeating: 0x22, count: 1024)
        guest.put(first, at: 0x20_0000)
        guest.put(second, at: 0x30_0000)
        let reply = guest.request([.readable(guest.header(Blk.typeOut, sector: 7), 16), .readable(0x20_0000, 512),
                                   .readable(0x30_0000, 1024), guest.statusBuffer()])
        #expect(reply == BlockReply(status: Blk.ok, used: 1))
        var expected = TemporaryDisk.pattern(0..<guest.disk.size)
        expected.replaceSubrange(7 * 512..<10 * 512, with: first + second)
        #expect(guest.disk.contents == expected)
        #expect(guest.device.stats.bytesWritten == 1536)
        // And reading it back through the device gives the same bytes.
        #expect(guest.read(sector: 7, count: 3).1 == first + second)
    }

    /// §2.7.4: no framing may be assumed. A header split over two descriptors, and data sharing
    /// a descriptor with the status byte, are the same request.
    @Test func anyDescriptorLayoutOfTheSameRequestWorks() throws {
        let guest = try BlockGuest()
        guest.probe()
        let header = guest.header(Blk.typeIn, sector: 2)
        let area: UInt64 = 0x20_0000
        guest.poison(area, 1025)
        let reply = guest.request([.readable(header, 8), .readable(header + 8, 8), .writable(area, 1025)])
        #expect(reply == BlockReply(status: Blk.ok, used: 1025))
        #expect(guest.bytes(area, 1024) == TemporaryDisk.pattern(1024..<2048))
        #expect(guest.bytes(area + 1024, 1) == [Blk.ok])

        // OUT with the header and the data in one descriptor.
        let out = guest.header(Blk.typeOut, sector: 4)
        let data = [UInt8](repeating: 0x5c, count: 512)
        let combined: UInt64 = 0x50_0000
        guest.put(guest.bytes(out, 16) + data, at: combined)
        #expect(guest.request([.readable(combined, 528), guest.statusBuffer()]) == BlockReply(status: Blk.ok, used: 1))
        #expect(Array(guest.disk.contents[2048..<2560]) == data)
    }

    @Test func aReadThroughAnIndirectTable() throws {
        let guest = try BlockGuest()
        guest.probe()
        guest.poison(0x20_0000, 2048)
        guest.submit([.readable(guest.header(Blk.typeIn, sector: 1), 16), .writable(0x20_0000, 1024), guest.statusBuffer()],
                     indirectTable: 0x60_0000)
        guest.notify()
        #expect(guest.takeReplies() == [BlockReply(status: Blk.ok, used: 1025)])
        #expect(guest.bytes(0x20_0000, 1024) == TemporaryDisk.pattern(512..<1536))
    }

    @Test func severalRequestsInOneNotificationAreServedInOrderWithOneInterrupt() throws {
        let guest = try BlockGuest()
        guest.probe()
        guest.put([UInt8](repeating: 0x77, count: 512), at: 0x20_0000)
        guest.submit([.readable(guest.header(Blk.typeOut, sector: 0), 16), .readable(0x20_0000, 512), guest.statusBuffer()])
        guest.poison(0x30_0000, 512)
        guest.submit([.readable(guest.header(Blk.typeIn, sector: 0), 16), .writable(0x30_0000, 512), guest.statusBuffer()])
        guest.submit([.readable(guest.header(Blk.typeFlush), 16), guest.statusBuffer()])
        guest.notify()
        #expect(guest.takeReplies() == [BlockReply(status: 0, used: 1), BlockReply(status: 0, used: 513), BlockReply(status: 0, used: 1)])
        #expect(guest.bytes(0x30_0000, 512) == [UInt8](repeating: 0x77, count: 512))  // the read saw the write before it
        #expect(guest.irq.count == 1)
    }

    // MARK: FLUSH and write-through (§5.2.6.2)

    @Test func flushSyncsTheFile() throws {
        let guest = try BlockGuest()
        guest.probe()
        #expect(guest.flush() == BlockReply(status: Blk.ok, used: 1))
        #expect(guest.faults.count("flush") == 1)
        #expect(guest.device.stats.requests[.flush] == 1)
        guest.faults.failFlush = true
        #expect(guest.flush() == BlockReply(status: Blk.ioError, used: 1))
    }

    /// With FLUSH negotiated writes are write-back (the driver flushes); without it, each write
    /// must be stable when it completes, so the device syncs after it.
    @Test func withoutFlushNegotiatedEveryWriteIsSynced() throws {
        let writeBack = try BlockGuest()
        writeBack.probe()
        _ = writeBack.write(sector: 1, [UInt8](repeating: 1, count: 512))
        #expect(writeBack.faults.count("flush") == 0)

        let writeThrough = try BlockGuest()
        writeThrough.probe(accept: { $0 & ~Blk.flush })
        #expect(writeThrough.transport.driverAcceptedFeatures & Blk.flush == 0)
        _ = writeThrough.write(sector: 1, [UInt8](repeating: 1, count: 512))
        _ = writeThrough.write(sector: 2, [UInt8](repeating: 2, count: 512))
        #expect(writeThrough.faults.count("flush") == 2)
        #expect(writeThrough.faults.calls == ["write", "flush", "write", "flush"])
    }

    // MARK: GET_ID (§5.2.6)

    @Test func getIDReturnsTheSerialZeroPaddedToTwentyBytes() throws {
        let guest = try BlockGuest(serial: Array("momin-disk-1".utf8))
        guest.probe()
        let area: UInt64 = 0x20_0000
        guest.poison(area, 64)
        let reply = guest.request([.readable(guest.header(Blk.typeGetID), 16), .writable(area, 20), guest.statusBuffer()])
        #expect(reply == BlockReply(status: Blk.ok, used: 21))
        #expect(guest.bytes(area, 20) == Array("momin-disk-1".utf8) + [UInt8](repeating: 0, count: 8))
        #expect(guest.bytes(area + 20, 4).allSatisfy { $0 == BlockGuest.sentinel })
    }

    @Test func getIDIntoAShortBufferGetsWhatFitsAndALongOneTwentyBytes() throws {
        let guest = try BlockGuest(serial: Array("ABCDEFGHIJKLMNOPQRST".utf8))
        guest.probe()
        let area: UInt64 = 0x20_0000
        guest.poison(area, 128)
        #expect(guest.request([.readable(guest.header(Blk.typeGetID), 16), .writable(area, 5), guest.statusBuffer()])
                == BlockReply(status: Blk.ok, used: 6))
        #expect(guest.bytes(area, 8) == Array("ABCDE".utf8) + [BlockGuest.sentinel, BlockGuest.sentinel, BlockGuest.sentinel])
        guest.poison(area, 128)
        #expect(guest.request([.readable(guest.header(Blk.typeGetID), 16), .writable(area, 64), guest.statusBuffer()])
                == BlockReply(status: Blk.ok, used: 21))
        #expect(guest.bytes(area, 20) == Array("ABCDEFGHIJKLMNOPQRST".utf8))
        #expect(guest.bytes(area + 20, 44).allSatisfy { $0 == BlockGuest.sentinel })
        // Split over two buffers, it continues where the first stopped.
        guest.poison(area, 128)
        #expect(guest.request([.readable(guest.header(Blk.typeGetID), 16), .writable(area, 3), .writable(area + 64, 17),
                               guest.statusBuffer()]) == BlockReply(status: Blk.ok, used: 21))
        #expect(guest.bytes(area, 3) == Array("ABC".utf8) && guest.bytes(area + 64, 17) == Array("DEFGHIJKLMNOPQRST".utf8))
    }

    @Test func getIDWithoutABufferIsAnIOError() throws {
        let guest = try BlockGuest()
        guest.probe()
        #expect(guest.request([.readable(guest.header(Blk.typeGetID), 16), guest.statusBuffer()]) == BlockReply(status: Blk.ioError, used: 1))
    }

    /// The modes the device thread's filter allows are linux/falloc.h's.
    @Test func fallocateModesArePunchHoleAndZeroRangeKeepingTheSize() {
        #expect(DiskFile.fallocateModes == [0x02 | 0x01, 0x10 | 0x01])
    }

    @Test func aSerialOverTwentyBytesIsRefused() throws {
        let disk = try TemporaryDisk(sectors: 1)
        #expect(throws: VirtioBlockError.serialTooLong(21)) {
            try VirtioBlock(storage: try disk.open(writable: false), readOnly: true, serial: [UInt8](repeating: 65, count: 21),
                            events: PollRegistry())
        }
    }

    // MARK: DISCARD and WRITE_ZEROES (§5.2.6)

    @Test func discardDeallocatesTheRangesAndKeepsTheSize() throws {
        let guest = try BlockGuest()
        guest.probe()
        #expect(guest.ranges(Blk.typeDiscard, [(8, 8, 0), (32, 1, 0)]) == BlockReply(status: Blk.ok, used: 1))
        var expected = TemporaryDisk.pattern(0..<guest.disk.size)
        expected.replaceSubrange(8 * 512..<16 * 512, with: [UInt8](repeating: 0, count: 8 * 512))
        expected.replaceSubrange(32 * 512..<33 * 512, with: [UInt8](repeating: 0, count: 512))
        #expect(guest.disk.contents == expected)  // this file system punches holes: they read as zeros
        #expect(guest.faults.count("punchHole") == 2)
        #expect(guest.device.stats.requests[.discard] == 1)
    }

    /// A discard is a hint (§5.2.6.2, MAY deallocate): where holes cannot be punched it succeeds
    /// and leaves the bytes.
    @Test func discardWhereHolesCannotBePunchedSucceedsAndChangesNothing() throws {
        let guest = try BlockGuest()
        guest.probe()
        guest.faults.noPunchHole = true
        #expect(guest.ranges(Blk.typeDiscard, [(8, 8, 0)]) == BlockReply(status: Blk.ok, used: 1))
        #expect(guest.disk.isUntouched)
        #expect(!guest.faults.calls.contains("write"))
    }

    @Test(arguments: [UInt32(0), 1])
    func writeZeroesZeroesTheRange(flags: UInt32) throws {
        let guest = try BlockGuest()
        guest.probe()
        #expect(guest.ranges(Blk.typeWriteZeroes, [(5, 3, flags)]) == BlockReply(status: Blk.ok, used: 1))
        var expected = TemporaryDisk.pattern(0..<guest.disk.size)
        expected.replaceSubrange(5 * 512..<8 * 512, with: [UInt8](repeating: 0, count: 3 * 512))
        #expect(guest.disk.contents == expected)
        // unmap punches a hole; without it the range is zeroed in place (or, where the file
        // system cannot, written with zeros).
        #expect(guest.faults.calls.first == (flags == 1 ? "punchHole" : "zeroRange"))
    }

    /// §5.2.6.2: after a write zeroes the range reads as zeros, whatever the file system can do.
    @Test(arguments: [UInt32(0), 1])
    func writeZeroesFallsBackToWritingZeros(flags: UInt32) throws {
        let guest = try BlockGuest()
        guest.probe()
        guest.faults.noPunchHole = true
        guest.faults.noZeroRange = true
        // 40 sectors fit one 64 KiB write of zeros (a 16 MiB range, the most allowed, takes 256).
        #expect(guest.ranges(Blk.typeWriteZeroes, [(10, 40, flags)]) == BlockReply(status: Blk.ok, used: 1))
        var expected = TemporaryDisk.pattern(0..<guest.disk.size)
        expected.replaceSubrange(10 * 512..<50 * 512, with: [UInt8](repeating: 0, count: 40 * 512))
        #expect(guest.disk.contents == expected)
        #expect(guest.faults.count("write") == 1)
        guest.faults.failWrites = true
        #expect(guest.ranges(Blk.typeWriteZeroes, [(10, 40, flags)]) == BlockReply(status: Blk.ioError, used: 1))
    }

    @Test func discardAndWriteZeroesNotNegotiatedAreUnsupported() throws {
        let guest = try BlockGuest()
        guest.probe(accept: { $0 & ~(Blk.discard | Blk.writeZeroes) })
        #expect(guest.ranges(Blk.typeDiscard, [(0, 1, 0)]) == BlockReply(status: Blk.unsupported, used: 1))
        #expect(guest.ranges(Blk.typeWriteZeroes, [(0, 1, 0)]) == BlockReply(status: Blk.unsupported, used: 1))
        #expect(guest.disk.isUntouched)
        #expect(guest.device.stats.unsupported == 2)
    }

    // MARK: I/O errors (§5.2.6: the used length counts what was written, status included)

    @Test func aReadThatFailsPartWayReportsWhatItMoved() throws {
        let guest = try BlockGuest()
        guest.probe()
        guest.faults.failReadsAfter = 700
        let area: UInt64 = 0x20_0000
        guest.poison(area, 2048)
        let reply = guest.request([.readable(guest.header(Blk.typeIn, sector: 0), 16), .writable(area, 512), .writable(area + 1024, 1024),
                                   guest.statusBuffer()])
        #expect(reply == BlockReply(status: Blk.ioError, used: 701))
        #expect(guest.bytes(area, 512) == TemporaryDisk.pattern(0..<512))
        #expect(guest.bytes(area + 1024, 188) == TemporaryDisk.pattern(512..<700))
        #expect(guest.device.stats.ioErrors == 1)
        // The queue goes on.
        guest.faults.failReadsAfter = nil
        #expect(guest.read(sector: 1, count: 1).0 == BlockReply(status: Blk.ok, used: 513))
    }

    @Test func aWriteThatFailsIsAnIOError() throws {
        let guest = try BlockGuest()
        guest.probe()
        guest.faults.failWrites = true
        #expect(guest.write(sector: 0, [UInt8](repeating: 9, count: 512)) == BlockReply(status: Blk.ioError, used: 1))
        #expect(guest.disk.isUntouched)
        #expect(!guest.needsReset)
    }

    /// A read past the end of a file that shrank behind the device's back is an I/O error.
    @Test func aFileThatShrankGivesIOErrorsNotGarbage() throws {
        let guest = try BlockGuest(sectors: 8)
        guest.probe()
        #expect(truncate(guest.disk.path, 1024) == 0)
        let (reply, data) = guest.read(sector: 1, count: 2)
        #expect(reply == BlockReply(status: Blk.ioError, used: 513))
        #expect(Array(data[0..<512]) == TemporaryDisk.pattern(512..<1024))
        #expect(data[512...].allSatisfy { $0 == BlockGuest.sentinel })
    }

    // MARK: Lifecycle

    @Test func requestsQueuedBeforeDriverOKAreServedAtActivation() throws {
        let guest = try BlockGuest()
        #expect(guest.negotiate())
        guest.setUpQueue(0, layout: guest.driver)
        guest.poison(BlockGuest.dataArea, 512)
        guest.submit([.readable(guest.header(Blk.typeIn, sector: 4), 16), .writable(BlockGuest.dataArea, 512), guest.statusBuffer()])
        guest.notify()  // dropped before DRIVER_OK
        #expect(guest.driver.usedIndex == 0)
        guest.addStatus(Status.driverOK)
        #expect(guest.takeReplies() == [BlockReply(status: Blk.ok, used: 513)])
        #expect(guest.bytes(BlockGuest.dataArea, 512) == TemporaryDisk.pattern(2048..<2560))
    }

    @Test func afterAFailureAResetBringsTheDeviceBack() throws {
        let guest = try BlockGuest()
        guest.probe()
        guest.submit([.readable(guest.header(Blk.typeFlush), 16)])  // no status byte
        guest.notify()
        #expect(guest.needsReset)
        guest.write(Reg.status, 0)
        try guest.memory.zero(at: 0x1000, count: 0x3000)
        guest.driver = FakeDriver(memory: guest.memory, size: 256, base: 0x1000)
        guest.probe()
        #expect(guest.flush() == BlockReply(status: Blk.ok, used: 1))
    }

    @Test func diagnosticsShowTheStateAndTheCounters() throws {
        let guest = try BlockGuest(readOnly: true)
        guest.probe()
        _ = guest.read(sector: 0, count: 2)
        _ = guest.write(sector: 0, [UInt8](repeating: 1, count: 512))
        let lines = guest.device.diagnostics
        #expect(lines.count == 3)
        #expect(lines[0] == "read-only, capacity 64 sectors, active true, write-back (FLUSH negotiated)")
        #expect(lines[1] == "requests: IN 1, OUT 1, FLUSH 0, GET_ID 0, DISCARD 0, WRITE_ZEROES 0, other 0; "
                + "bytes read 1024, written 0; errors: 1 IOERR, 0 UNSUPP")
        #expect(lines[2] == "rate limit: unlimited; holding a request false, timer armed false")
    }
}
