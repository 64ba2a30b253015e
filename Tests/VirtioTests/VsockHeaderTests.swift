import Devices
import Testing

/// The packet header codec (virtio 1.2 §5.10.6) and the checks every TX header passes.
@Suite struct VsockHeaderTests {
    /// Every field a different value, so a swapped or misplaced field shows.
    static let sample = VsockHeader(
        sourceCID: 0x0102_0304_0506_0708, destinationCID: 2, sourcePort: 0x1122_3344, destinationPort: 0x5566_7788,
        length: 0x0000_1000, type: 1, op: 5, flags: 0x0000_0003, bufferAllocation: 0x0004_0000,
        forwardCount: 0xdead_beef)

    /// The bytes written out from the struct layout in §5.10.6, little-endian.
    static let golden: [UInt8] = [
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // src_cid
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // dst_cid
        0x44, 0x33, 0x22, 0x11,  // src_port
        0x88, 0x77, 0x66, 0x55,  // dst_port
        0x00, 0x10, 0x00, 0x00,  // len
        0x01, 0x00,  // type
        0x05, 0x00,  // op
        0x03, 0x00, 0x00, 0x00,  // flags
        0x00, 0x00, 0x04, 0x00,  // buf_alloc
        0xef, 0xbe, 0xad, 0xde,  // fwd_cnt
    ]

    @Test func encodesToTheGoldenBytes() {
        #expect(VsockHeader.size == 44)
        #expect(Self.sample.bytes == Self.golden)
    }

    @Test func decodesTheGoldenBytes() throws {
        let header = try #require(VsockHeader(decoding: Self.golden))
        #expect(header == Self.sample)
        #expect(header.operation == .rw)
    }

    @Test func roundTripsAndIgnoresBytesAfterTheHeader() throws {
        for op: UInt16 in [0, 1, 2, 3, 4, 5, 6, 7, 8, 0xffff] {
            var h = Self.sample
            h.op = op
            h.type = op &* 3
            let decoded = try #require(VsockHeader(decoding: h.bytes + [0xaa, 0xbb]))
            #expect(decoded == h)
        }
        #expect(VsockHeader(decoding: Array(Self.golden.prefix(43))) == nil)
        #expect(VsockHeader(decoding: []) == nil)
    }

    @Test func unknownOpsHaveNoOperation() {
        var h = Self.sample
        h.op = 0
        #expect(h.operation == nil)
        h.op = 8
        #expect(h.operation == nil)
        h.op = 7
        #expect(h.operation == .creditRequest)
    }

    // MARK: TX header checks

    static func txHeader(length: UInt32, source: UInt64 = 3, destination: UInt64 = 2) -> VsockHeader {
        VsockHeader(sourceCID: source, destinationCID: destination, sourcePort: 1, destinationPort: 2, length: length,
                    op: VsockOp.rw.rawValue)
    }

    @Test func wellFormedHeadersPass() {
        #expect(VsockPacketRejection.check(Self.txHeader(length: 0), payloadBytes: 0, guestCID: 3) == nil)
        #expect(VsockPacketRejection.check(Self.txHeader(length: 10), payloadBytes: 10, guestCID: 3) == nil)
        #expect(VsockPacketRejection.check(Self.txHeader(length: 10), payloadBytes: 4096, guestCID: 3) == nil)
        #expect(VsockPacketRejection.check(Self.txHeader(length: 65536), payloadBytes: 65536, guestCID: 3) == nil)
    }

    @Test func lengthBeyondTheChainIsRejected() {
        #expect(VsockPacketRejection.check(Self.txHeader(length: 11), payloadBytes: 10, guestCID: 3)
            == .lengthBeyondChain(length: 11, available: 10))
        #expect(VsockPacketRejection.check(Self.txHeader(length: .max), payloadBytes: 0, guestCID: 3)
            == .lengthBeyondChain(length: .max, available: 0))
    }

    @Test func lengthOver64KiBIsRejected() {
        #expect(VsockPacketRejection.check(Self.txHeader(length: 65537), payloadBytes: 65537, guestCID: 3)
            == .lengthTooLarge(length: 65537))
    }

    @Test func cidsOtherThanGuestToHostAreRejected() {
        #expect(VsockPacketRejection.check(Self.txHeader(length: 0, source: 4), payloadBytes: 0, guestCID: 3)
            == .wrongSourceCID(4))
        #expect(VsockPacketRejection.check(Self.txHeader(length: 0, source: 3 | 1 << 32), payloadBytes: 0, guestCID: 3)
            == .wrongSourceCID(3 | 1 << 32))
        #expect(VsockPacketRejection.check(Self.txHeader(length: 0, destination: 3), payloadBytes: 0, guestCID: 3)
            == .wrongDestinationCID(3))
        #expect(VsockPacketRejection.check(Self.txHeader(length: 0, destination: 1), payloadBytes: 0, guestCID: 3)
            == .wrongDestinationCID(1))
    }
}
