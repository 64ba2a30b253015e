import Audit
import Merkle
import Testing

@Suite struct LeafEncodingTests {
    @Test func theByteLayoutIsTheDocumentedOne() throws {
        // docs/audit.md: version 1, tag 4 (vm-start), u64 index, u64 time, then u32 length + "vm".
        let record = AuditRecord(index: 0x0102, time: 0x0A0B_0C0D, event: .lifecycle(.vmStart(vm: "vm")))
        let expected: [UInt8] = [1, 4, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0x0A, 0x0B, 0x0C, 0x0D, 0, 0, 0, 2, 0x76, 0x6D]
        #expect(try record.leafData() == expected)
        let decision = AuditRecord(index: 1, time: 2, event: .decision(Decision(requestID: 3, verdict: .allow, rule: "r", reason: "")))
        let decisionBytes: [UInt8] = [1, 2] + [0, 0, 0, 0, 0, 0, 0, 1] + [0, 0, 0, 0, 0, 0, 0, 2] + [0, 0, 0, 0, 0, 0, 0, 3]
            + [1] + [0, 0, 0, 1, 0x72] + [0, 0, 0, 0]
        #expect(try decision.leafData() == decisionBytes)
    }

    @Test(arguments: 0..<12) func everyKindRoundTripsExactly(n: Int) throws {
        let record = AuditRecord(index: UInt64(n) * 1_000_003, time: UInt64(n) << 40, event: sampleEvent(n))
        let bytes = try record.leafData()
        let decoded = try AuditRecord(leafData: bytes)
        #expect(decoded == record)
        #expect(try decoded.leafData() == bytes)
    }

    @Test func negativeStatusesAndEmptyFieldsSurvive() throws {
        let record = AuditRecord(index: 0, time: 0, event: .resultDigest(ResultDigest(
            requestID: .max, status: .min, byteCount: 0, sha256: Merkle.emptyRoot)))
        #expect(try AuditRecord(leafData: record.leafData()) == record)
        let empty = AuditRecord(index: 5, time: .max, event: .toolRequest(ToolRequest(requestID: 0, agent: "", tool: "", arguments: [])))
        #expect(try AuditRecord(leafData: empty.leafData()) == empty)
    }

    @Test func onlyCanonicalBytesDecode() throws {
        let good = try AuditRecord(index: 7, time: 9, event: sampleEvent(4)).leafData()
        var badVersion = good
        badVersion[0] = 2
        var badTag = good
        badTag[1] = 0
        var unknownTag = good
        unknownTag[1] = 8
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("a trailing byte", good + [0]),
            ("truncated by one", Array(good.dropLast())),
            ("header only", Array(good.prefix(18))),
            ("version 2", badVersion),
            ("tag 0", badTag),
            ("tag 8", unknownTag),
        ]
        for (what, bytes) in cases {
            #expect(throws: LeafFormatError.self, "\(what)") { try AuditRecord(leafData: bytes) }
        }
        // A string that is not UTF-8, a verdict that does not exist, a length past the end.
        let badUTF8: [UInt8] = [1, 4] + [UInt8](repeating: 0, count: 16) + [0, 0, 0, 2, 0xC3, 0x28]
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: badUTF8) }
        var badVerdict = try AuditRecord(index: 1, time: 2, event: sampleEvent(1)).leafData()
        badVerdict[26] = 2
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: badVerdict) }
        let longClaim: [UInt8] = [1, 4] + [UInt8](repeating: 0, count: 16) + [0xFF, 0xFF, 0xFF, 0xFF, 0x61]
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: longClaim) }
    }

    @Test func aFieldOverTheLimitIsRefusedNotTruncated() {
        let huge = AuditRecord(index: 0, time: 0, event: .toolRequest(ToolRequest(
            requestID: 1, agent: "a", tool: "t", arguments: [UInt8](repeating: 1, count: AuditRecord.maximumFieldLength + 1))))
        #expect(throws: LeafFormatError.self) { try huge.leafData() }
    }

    /// docs/audit.md: tag 10, connection-end: u64 request id · string address · u64 sent · u64
    /// received · u64 duration · string end · bytes content sent · bytes content received.
    @Test func connectionEndRecordsHaveTheirDocumentedLayoutAndRoundTrip() throws {
        let end = ConnectionEnd(requestID: 7, address: "1.2.3.4:80", bytesSent: 2, bytesReceived: 3, durationMilliseconds: 9,
                                end: "closed", sentContent: [0x41], receivedContent: [])
        let record = AuditRecord(index: 1, time: 2, event: .connectionEnd(end))
        let bytes: [UInt8] = [1, 10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7]
            + [0, 0, 0, 10] + Array("1.2.3.4:80".utf8) + [0, 0, 0, 0, 0, 0, 0, 2] + [0, 0, 0, 0, 0, 0, 0, 3] + [0, 0, 0, 0, 0, 0, 0, 9]
            + [0, 0, 0, 6] + Array("closed".utf8) + [0, 0, 0, 1, 0x41] + [0, 0, 0, 0]
        #expect(try record.leafData() == bytes)
        #expect(try AuditRecord(leafData: bytes) == record)
        #expect(record.event.kind == "connection-end")
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: Array(bytes.dropLast())) }
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: bytes + [0]) }
    }

    /// docs/audit.md: tag 11, brain-call: u64 request id · string model · u64 status · u64 prompt
    /// tokens · u64 completion tokens · u8 usage · digest request · digest response · u64 sent ·
    /// u64 received · u64 duration · string end · bytes request content · bytes response content.
    @Test func brainCallRecordsHaveTheirDocumentedLayoutAndRoundTrip() throws {
        let request = MerkleHash(bytes: [UInt8](repeating: 0x11, count: 32))!
        let response = MerkleHash(bytes: [UInt8](repeating: 0x22, count: 32))!
        let call = BrainCall(requestID: 5, model: "m", status: 200, promptTokens: 12, completionTokens: 3, usage: .reported,
                             requestSHA256: request, responseSHA256: response, bytesSent: 40, bytesReceived: 50,
                             durationMilliseconds: 6, end: "complete", requestContent: [0x7b], responseContent: [])
        let record = AuditRecord(index: 1, time: 2, event: .brainCall(call))
        func u64(_ value: UInt64) -> [UInt8] { (0..<8).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }
        let bytes: [UInt8] = [1, 11] + u64(1) + u64(2) + u64(5) + [0, 0, 0, 1, 0x6d] + u64(200) + u64(12) + u64(3) + [1]
            + request.bytes + response.bytes + u64(40) + u64(50) + u64(6) + [0, 0, 0, 8] + Array("complete".utf8)
            + [0, 0, 0, 1, 0x7b] + [0, 0, 0, 0]
        #expect(try record.leafData() == bytes)
        #expect(try AuditRecord(leafData: bytes) == record)
        #expect(record.event.kind == "brain-call")
        var unknownUsage = bytes
        unknownUsage[18 + 8 + 5 + 24] = 3
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: unknownUsage) }
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: Array(bytes.dropLast())) }
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: bytes + [0]) }
    }

    /// docs/audit.md: tags 8 and 9, disk-attach and disk-detach: string vm · string name ·
    /// string path · u8 writable · u64 size · string identity · u8 has-digest · [32 digest].
    @Test func diskRecordsHaveTheirDocumentedLayoutAndRoundTrip() throws {
        let digest = MerkleHash(bytes: [UInt8](repeating: 0xab, count: 32))!
        let state = DiskState(vm: "v", name: "e", path: "/d", writable: false, size: 512, identity: "i", sha256: digest)
        let attach = AuditRecord(index: 3, time: 4, event: .lifecycle(.diskAttach(state)))
        let common: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 3] + [0, 0, 0, 0, 0, 0, 0, 4] + [0, 0, 0, 1, 0x76] + [0, 0, 0, 1, 0x65]
            + [0, 0, 0, 2, 0x2f, 0x64]
        let bytes: [UInt8] = [1, 8] + common + [0] + [0, 0, 0, 0, 0, 0, 2, 0] + [0, 0, 0, 1, 0x69] + [1] + digest.bytes
        #expect(try attach.leafData() == bytes)
        #expect(try AuditRecord(leafData: bytes) == attach)
        #expect(attach.event.kind == "disk-attach")
        var unread = state
        unread.sha256 = nil
        unread.writable = true
        let detach = AuditRecord(index: 3, time: 4, event: .lifecycle(.diskDetach(unread)))
        let detachBytes: [UInt8] = [1, 9] + common + [1] + [0, 0, 0, 0, 0, 0, 2, 0] + [0, 0, 0, 1, 0x69] + [0]
        #expect(try detach.leafData() == detachBytes)
        #expect(try AuditRecord(leafData: detachBytes) == detach)
        #expect(detach.event.kind == "disk-detach")
        // Flags other than 0 and 1, a missing digest, bytes after the end: refused.
        var badFlag = bytes
        badFlag[2 + common.count] = 2
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: badFlag) }
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: Array(bytes.dropLast())) }
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: detachBytes + [0]) }
        var badDigestFlag = detachBytes
        badDigestFlag[badDigestFlag.count - 1] = 2
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: badDigestFlag) }
    }

    /// docs/audit.md: tag 7, run-refused: string vm · string reason.
    @Test func aRefusedRunHasItsDocumentedLayoutAndRoundTrips() throws {
        let record = AuditRecord(index: 3, time: 4, event: .lifecycle(.runRefused(vm: "v", reason: "no room")))
        let bytes: [UInt8] = [1, 7] + [0, 0, 0, 0, 0, 0, 0, 3] + [0, 0, 0, 0, 0, 0, 0, 4] + [0, 0, 0, 1, 0x76]
            + [0, 0, 0, 7] + Array("no room".utf8)
        #expect(try record.leafData() == bytes)
        #expect(try AuditRecord(leafData: bytes) == record)
        #expect(record.event.kind == "run-refused")
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: Array(bytes.dropLast())) }
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: bytes + [0]) }
    }

    /// docs/audit.md, tag 12: a tool request made through the API carries its caller after the
    /// fields of tag 1; one without a caller keeps tag 1 and its bytes.
    @Test func aRequestWithACallerHasItsOwnTagAndTheOneWithoutKeepsItsBytes() throws {
        let plain = ToolRequest(requestID: 1, agent: "a", tool: "t", arguments: [9])
        var asked = plain
        asked.caller = "uid=0 pid=1"
        let fields: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 1] + [0, 0, 0, 1, 0x61] + [0, 0, 0, 1, 0x74] + [0, 0, 0, 1, 9]
        let header: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 2] + [0, 0, 0, 0, 0, 0, 0, 3]
        let without = AuditRecord(index: 2, time: 3, event: .toolRequest(plain))
        let with = AuditRecord(index: 2, time: 3, event: .toolRequest(asked))
        #expect(try without.leafData() == [1, 1] + header + fields)
        let bytes = try with.leafData()
        #expect(bytes == [1, 12] + header + fields + [0, 0, 0, 11] + Array("uid=0 pid=1".utf8))
        #expect(try AuditRecord(leafData: bytes) == with)
        #expect(with.event.kind == "tool-request")
        // Tag 12 without its caller, or tag 1 with one more field, is not canonical.
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: [1, 12] + header + fields) }
        #expect(throws: LeafFormatError.self) { try AuditRecord(leafData: [1, 1] + header + fields + [0, 0, 0, 0]) }
    }

    @Test func kindsNameTheirEvent() {
        #expect((0..<6).map { sampleEvent($0).kind } == ["tool-request", "decision", "result-digest", "vm-start", "vm-stop", "policy-load"])
    }

    /// docs/audit.md: domain v2 ‖ 16-byte log id ‖ u64 sequence ‖ u64 tree size ‖ root ‖ u64 time.
    @Test func treeHeadSigningBytesAreDomainSeparatedAndNameTheLog() throws {
        let root = Merkle.leafHash([1, 2, 3])
        let log = try #require(LogID(bytes: Array(0x10..<0x20)))
        let bytes = SignedTreeHead.signedBytes(logID: log, sequence: 1, treeSize: 2, root: root, time: 3)
        #expect(bytes.starts(with: Array("MominAI audit tree head v2\u{0}".utf8)))
        #expect(bytes.count == SignedTreeHead.domain.count + 16 + 8 + 8 + 32 + 8)
        let afterDomain = Array(bytes[SignedTreeHead.domain.count...])
        #expect(Array(afterDomain.prefix(16)) == Array(0x10..<0x20))
        #expect(Array(afterDomain.dropFirst(16).prefix(16)) == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2])
        #expect(Array(afterDomain.dropFirst(32).prefix(32)) == root.bytes)
        #expect(Array(afterDomain.suffix(8)) == [0, 0, 0, 0, 0, 0, 0, 3])
        #expect(SignedTreeHead.signedBytes(logID: log, sequence: 2, treeSize: 2, root: root, time: 3) != bytes)
        let other = try #require(LogID(bytes: Array(0x11...0x20)))
        #expect(SignedTreeHead.signedBytes(logID: other, sequence: 1, treeSize: 2, root: root, time: 3) != bytes)
    }
}
