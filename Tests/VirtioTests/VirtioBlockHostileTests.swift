import Devices
import GuestMemory
import Testing

/// A hostile driver against virtio-blk (virtio 1.2 §5.2.6): every request is checked before any
/// I/O. One whose status byte can be written gets IOERR or UNSUPP, touches neither the file nor
/// guest data, and the queue goes on; a chain with nowhere to put a status stops the device.
@Suite struct VirtioBlockHostileTests {
    static let area: UInt64 = 0x20_0000

    /// The request was refused with `status`: status only (used length 1), the file and the
    /// guest's data untouched, the device still running and serving the next request.
    static func expectRefused(_ guest: BlockGuest, _ reply: BlockReply?, _ status: UInt8, dataUntouched: Int = 0,
                              sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(reply == BlockReply(status: status, used: 1), sourceLocation: sourceLocation)
        #expect(guest.disk.isUntouched, "the file changed", sourceLocation: sourceLocation)
        if dataUntouched > 0 {
            #expect(guest.bytes(area, dataUntouched).allSatisfy { $0 == BlockGuest.sentinel }, "guest data written",
                    sourceLocation: sourceLocation)
        }
        #expect(!guest.needsReset, sourceLocation: sourceLocation)
        #expect(guest.flush() == BlockReply(status: Blk.ok, used: 1), "the queue stopped", sourceLocation: sourceLocation)
    }

    /// The device stopped: NEEDS_RESET, a failure naming `reason`, nothing in the used ring.
    static func expectBroken(_ guest: BlockGuest, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(guest.needsReset, sourceLocation: sourceLocation)
        #expect(guest.transport.failure?.contains(reason) == true, "\(guest.transport.failure ?? "no failure")",
                sourceLocation: sourceLocation)
        #expect(guest.driver.usedIndex == 0, sourceLocation: sourceLocation)
        #expect(guest.disk.isUntouched, sourceLocation: sourceLocation)
    }

    static func started(readOnly: Bool = false) throws -> BlockGuest {
        let guest = try BlockGuest(readOnly: readOnly)
        guest.probe()
        guest.poison(area, 0x4_1000)
        return guest
    }

    // MARK: The header

    @Test func aHeaderShorterThanSixteenBytesIsAnIOError() throws {
        let guest = try Self.started()
        let reply = guest.request([.readable(guest.header(Blk.typeOut, sector: 0), 8), .writable(Self.area, 512), guest.statusBuffer()])
        Self.expectRefused(guest, reply, Blk.ioError, dataUntouched: 512)
        #expect(guest.device.stats.other == 1)
    }

    @Test func aDeviceWritableHeaderIsAnIOError() throws {
        let guest = try Self.started()
        let header = guest.header(Blk.typeIn, sector: 0x0102_0304_0506_0708)
        let original = guest.bytes(header, 16)
        let reply = guest.request([.writable(header, 16), .writable(Self.area, 512), guest.statusBuffer()])
        Self.expectRefused(guest, reply, Blk.ioError, dataUntouched: 512)
        #expect(guest.bytes(header, 16) == original)  // nor was the header written
    }

    @Test(arguments: [UInt32(2), 3, 10, 14, 0xffff_ffff])
    func anUnknownTypeIsUnsupported(type: UInt32) throws {
        let guest = try Self.started()
        let reply = guest.request([.readable(guest.header(type, sector: 0), 16), .writable(Self.area, 512), guest.statusBuffer()])
        Self.expectRefused(guest, reply, Blk.unsupported, dataUntouched: 512)
        #expect(guest.device.stats.unsupported == 1)
    }

    // MARK: The status byte

    /// No device-writable byte at all: nowhere to say anything, so the queue is broken.
    @Test func aMissingStatusDescriptorStopsTheDevice() throws {
        let guest = try Self.started()
        guest.submit([.readable(guest.header(Blk.typeFlush), 16)])
        guest.notify()
        Self.expectBroken(guest, "no device-writable byte for its status")
    }

    @Test func aReadOnlyStatusDescriptorStopsTheDevice() throws {
        let guest = try Self.started()
        guest.submit([.readable(guest.header(Blk.typeOut, sector: 0), 16), .readable(Self.area, 512), .readable(BlockGuest.statusArea, 1)])
        guest.notify()
        Self.expectBroken(guest, "no device-writable byte for its status")
    }

    /// A read-only status after writable data breaks the queue's own ordering rule (§2.7.4.2).
    @Test func aReadOnlyStatusAfterWritableDataStopsTheDevice() throws {
        let guest = try Self.started()
        guest.submit([.readable(guest.header(Blk.typeIn, sector: 0), 16), .writable(Self.area, 512), .readable(BlockGuest.statusArea, 1)])
        guest.notify()
        Self.expectBroken(guest, "device-readable buffer follows a device-writable one")
        #expect(guest.bytes(Self.area, 512).allSatisfy { $0 == BlockGuest.sentinel })
    }

    @Test func aZeroLengthStatusDescriptorStopsTheDevice() throws {
        let guest = try Self.started()
        guest.submit([.readable(guest.header(Blk.typeFlush), 16), .writable(BlockGuest.statusArea, 0)])
        guest.notify()
        Self.expectBroken(guest, "zero-length descriptor")
    }

    @Test func aLongerStatusDescriptorTakesTheStatusInItsLastByte() throws {
        let guest = try Self.started()
        let status = guest.statusBuffer(4)
        guest.submit([.readable(guest.header(Blk.typeFlush), 16), status])
        guest.notify()
        // FLUSH has no data: three writable bytes before the status are data in the wrong direction.
        #expect(guest.takeReplies() == [BlockReply(status: Blk.ioError, used: 1)])
        #expect(guest.bytes(status.address, 3).allSatisfy { $0 == BlockGuest.sentinel })
    }

    // MARK: Data direction

    @Test func readDataInADeviceReadableBufferIsAnIOError() throws {
        let guest = try Self.started()
        let reply = guest.request([.readable(guest.header(Blk.typeIn, sector: 0), 16), .readable(Self.area, 512), guest.statusBuffer()])
        Self.expectRefused(guest, reply, Blk.ioError, dataUntouched: 512)
        #expect(guest.device.stats.bytesRead == 0)
    }

    @Test func writeDataInADeviceWritableBufferIsAnIOError() throws {
        let guest = try Self.started()
        let reply = guest.request([.readable(guest.header(Blk.typeOut, sector: 0), 16), .writable(Self.area, 512), guest.statusBuffer()])
        Self.expectRefused(guest, reply, Blk.ioError, dataUntouched: 512)
        #expect(guest.device.stats.bytesWritten == 0)
    }

    @Test func discardWithAWritableRangeTableIsAnIOError() throws {
        let guest = try Self.started()
        let reply = guest.request([.readable(guest.header(Blk.typeDiscard), 16), .writable(Self.area, 16), guest.statusBuffer()])
        Self.expectRefused(guest, reply, Blk.ioError, dataUntouched: 16)
    }

    // MARK: Sectors and lengths

    @Test(arguments: [(UInt64(64), 1), (63, 2), (1 << 40, 1)])
    func aRangePastTheCapacityIsAnIOError(sector: UInt64, count: Int) throws {
        let guest = try Self.started()  // 64 sectors
        let (reply, _) = guest.read(sector: sector, count: count, at: Self.area)
        Self.expectRefused(guest, reply, Blk.ioError, dataUntouched: count * 512)
        let out = guest.write(sector: sector, [UInt8](repeating: 1, count: count * 512), at: 0x30_0000)
        Self.expectRefused(guest, out, Blk.ioError)
    }

    /// sector + sectors overflows UInt64: caught before it could wrap into range.
    @Test(arguments: [UInt64.max, UInt64.max - 1, UInt64.max >> 9, (UInt64.max >> 9) + 1])
    func aRangeThatOverflowsIsAnIOError(sector: UInt64) throws {
        let guest = try Self.started()
        let (reply, _) = guest.read(sector: sector, count: 2, at: Self.area)
        Self.expectRefused(guest, reply, Blk.ioError, dataUntouched: 1024)
    }

    @Test(arguments: [1, 511, 513, 1000])
    func dataNotWholeSectorsIsAnIOError(length: UInt32) throws {
        let guest = try Self.started()
        let reply = guest.request([.readable(guest.header(Blk.typeIn, sector: 0), 16), .writable(Self.area, length), guest.statusBuffer()])
        Self.expectRefused(guest, reply, Blk.ioError, dataUntouched: Int(length))
        guest.put([UInt8](repeating: 3, count: Int(length)), at: 0x30_0000)
        let out = guest.request([.readable(guest.header(Blk.typeOut, sector: 0), 16), .readable(0x30_0000, length), guest.statusBuffer()])
        Self.expectRefused(guest, out, Blk.ioError)
    }

    /// seg_max: 128 data segments go, 129 do not (here through an indirect table).
    @Test func moreSegmentsThanSegMaxIsAnIOError() throws {
        let guest = try BlockGuest(sectors: 256)
        guest.probe()
        guest.poison(Self.area, 0x4_1000)
        func segments(_ n: Int) -> [Buffer] { (0..<n).map { .writable(Self.area + UInt64($0) * 1024, 512) } }
        guest.submit([.readable(guest.header(Blk.typeIn, sector: 0), 16)] + segments(129) + [guest.statusBuffer()], indirectTable: 0x60_0000)
        guest.notify()
        #expect(guest.takeReplies() == [BlockReply(status: Blk.ioError, used: 1)])
        #expect(guest.bytes(Self.area, 512).allSatisfy { $0 == BlockGuest.sentinel })

        guest.submit([.readable(guest.header(Blk.typeIn, sector: 0), 16)] + segments(128) + [guest.statusBuffer()], indirectTable: 0x60_0000)
        guest.notify()
        #expect(guest.takeReplies() == [BlockReply(status: Blk.ok, used: 128 * 512 + 1)])
        // Segment i holds sector i.
        #expect(guest.bytes(Self.area + 127 * 1024, 512) == TemporaryDisk.pattern(127 * 512..<128 * 512))
    }

    /// size_max: a 128 KiB segment goes, a byte-for-sector larger one does not.
    @Test func aSegmentOverSizeMaxIsAnIOError() throws {
        let guest = try BlockGuest(sectors: 512)
        guest.probe()
        guest.poison(Self.area, 0x2_1000)
        let big = UInt32(128 * 1024 + 512)
        let reply = guest.request([.readable(guest.header(Blk.typeIn, sector: 0), 16), .writable(Self.area, big), guest.statusBuffer()])
        #expect(reply == BlockReply(status: Blk.ioError, used: 1))
        #expect(guest.bytes(Self.area, Int(big)).allSatisfy { $0 == BlockGuest.sentinel })
        let fits = guest.request([.readable(guest.header(Blk.typeIn, sector: 0), 16), .writable(Self.area, 128 * 1024), guest.statusBuffer()])
        #expect(fits == BlockReply(status: Blk.ok, used: 128 * 1024 + 1))
    }

    // MARK: Range tables (DISCARD, WRITE_ZEROES)

    @Test(arguments: [UInt32(8), 15, 17, 24])
    func aPartialRangeStructIsAnIOError(length: UInt32) throws {
        let guest = try Self.started()
        guest.put([UInt8](repeating: 0, count: 32), at: 0x30_0000)
        let reply = guest.request([.readable(guest.header(Blk.typeDiscard), 16), .readable(0x30_0000, length), guest.statusBuffer()])
        Self.expectRefused(guest, reply, Blk.ioError)
    }

    @Test func aDiscardWithoutRangesIsAnIOError() throws {
        let guest = try Self.started()
        Self.expectRefused(guest, guest.request([.readable(guest.header(Blk.typeDiscard), 16), guest.statusBuffer()]), Blk.ioError)
    }

    @Test func moreRangesThanTheMaximumIsAnIOError() throws {
        let guest = try Self.started()
        Self.expectRefused(guest, guest.ranges(Blk.typeDiscard, Array(repeating: (0, 1, 0), count: 17), at: 0x30_0000), Blk.ioError)
        Self.expectRefused(guest, guest.ranges(Blk.typeWriteZeroes, [(0, 1, 0), (2, 1, 0)], at: 0x30_0000), Blk.ioError)
        // 16 discards are allowed.
        #expect(guest.ranges(Blk.typeDiscard, Array(repeating: (0, 1, 0), count: 16), at: 0x30_0000) == BlockReply(status: Blk.ok, used: 1))
    }

    /// §5.2.6.2: unmap on a discard, and any flag beyond unmap, are UNSUPP.
    static let badFlags: [(UInt32, UInt32)] = [(Blk.typeDiscard, 1), (Blk.typeDiscard, 2), (Blk.typeWriteZeroes, 2),
                                               (Blk.typeWriteZeroes, 0x8000_0001)]
    @Test(arguments: badFlags)
    func unsupportedRangeFlagsAreUnsupported(type: UInt32, flags: UInt32) throws {
        let guest = try Self.started()
        Self.expectRefused(guest, guest.ranges(type, [(0, 1, flags)], at: 0x30_0000), Blk.unsupported)
    }

    @Test func aRangePastTheCapacityOrOverItsMaximumIsAnIOError() throws {
        let guest = try Self.started()
        Self.expectRefused(guest, guest.ranges(Blk.typeDiscard, [(60, 5, 0)], at: 0x30_0000), Blk.ioError)
        Self.expectRefused(guest, guest.ranges(Blk.typeDiscard, [(0, 1, 0), (UInt64.max, 2, 0)], at: 0x30_0000), Blk.ioError)
        Self.expectRefused(guest, guest.ranges(Blk.typeWriteZeroes, [(0, (1 << 15) + 1, 0)], at: 0x30_0000), Blk.ioError)
        #expect(!guest.faults.calls.contains("punchHole"))  // nothing reached the file, not even the first range
    }

    // MARK: Read-only disks (§5.2.6.2)

    /// The device's descriptor is writable here: only the device's own check keeps the file intact.
    @Test func writesDiscardsAndWriteZeroesOnAReadOnlyDiskAreIOErrorsAndNeverReachTheFile() throws {
        let guest = try Self.started(readOnly: true)
        Self.expectRefused(guest, guest.write(sector: 0, [UInt8](repeating: 0x42, count: 1024), at: 0x30_0000), Blk.ioError)
        Self.expectRefused(guest, guest.ranges(Blk.typeDiscard, [(0, 8, 0)], at: 0x30_0000), Blk.ioError)
        Self.expectRefused(guest, guest.ranges(Blk.typeWriteZeroes, [(0, 8, 0)], at: 0x30_0000), Blk.ioError)
        Self.expectRefused(guest, guest.ranges(Blk.typeWriteZeroes, [(0, 8, 1)], at: 0x30_0000), Blk.ioError)
        #expect(guest.faults.calls.allSatisfy { $0 == "read" })  // flushes on a read-only disk sync nothing
        #expect(guest.device.stats.ioErrors == 4)
        // Reads still work.
        #expect(guest.read(sector: 1, count: 1, at: 0x30_0000).1 == TemporaryDisk.pattern(512..<1024))
    }

    // MARK: The queue cannot make the device spin or hog its thread

    /// A round serves at most 32 requests; the rest wait for the loop's next turn.
    @Test func aFullQueueIsServedARoundAtATime() throws {
        let guest = try Self.started()
        for _ in 0..<70 { guest.submit([.readable(guest.header(Blk.typeFlush), 16), guest.statusBuffer()]) }
        guest.notify()
        #expect(guest.driver.usedIndex == 32)
        #expect(guest.registry.pendingWork == 1)
        guest.registry.poll()
        #expect(guest.driver.usedIndex == 64)
        guest.registry.poll()
        #expect(guest.driver.usedIndex == 70)
        #expect(guest.takeReplies().allSatisfy { $0 == BlockReply(status: Blk.ok, used: 1) })
    }
}
