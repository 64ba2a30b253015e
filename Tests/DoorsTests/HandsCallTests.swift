import Doors
import Testing

/// The hands call frame: every call and reply survives a round trip, golden bytes pin the
/// layout, and every bound and malformation is refused with what was wrong.
@Suite struct HandsCallTests {
    static let calls: [HandsCall] = [
        .bucketPut(namespace: "cases/1", key: "a", value: [0, 1, 2, 255]),
        .bucketPut(namespace: "n", key: "empty", value: []),
        .bucketGet(namespace: "cases/1", key: "a"),
        .bucketQuery(namespace: "cases/1", keyPrefix: ""),
        .bucketQuery(namespace: "cases/1", keyPrefix: "fi"),
        .doorSend(door: "findings", to: "triage", message: Array("hi".utf8), timeoutMilliseconds: 30_000),
        .doorReceive(door: "findings", timeoutMilliseconds: 0),
        .spawn(SpawnRequest(name: "a", policy: Array("version: 1\n".utf8), policyFormat: "yaml", vcpus: 1, memoryMiB: 256,
                            argv: ["/bin/sh", "-c", "echo ünïcode"], env: ["PATH=/bin"])),
        .spawn(SpawnRequest(name: "b", policy: [], policyFormat: "json", vcpus: 2, memoryMiB: 512, argv: ["x"])),
        .spawn(SpawnRequest(name: "c", policy: [], policyFormat: "yaml", vcpus: 1, memoryMiB: 256, argv: ["python3"], env: ["A=1"],
                            disks: ["case1", "momin-root"])),
        .wait(agent: "a", timeoutMilliseconds: .max),
        .stop(agent: "triage.a"),
        .whoami,
        .install(ecosystem: "pip", requirements: ["pefile==2024.8.26"]),
        .install(ecosystem: "pip", requirements: ["requests[socks] >=2.31 ; python_version >= \"3.8\"", "yara-python", "ünï"]),
        .installFile(install: "3f2a-01", file: 0, offset: 0),
        .installFile(install: "x", file: .max, offset: .max),
    ]

    func decode(_ bytes: [UInt8]) throws -> HandsCall {
        let (kind, length) = try HandsCallCodec.payloadLength(header: Array(bytes.prefix(HandsCallProtocol.headerSize)))
        #expect(length == bytes.count - HandsCallProtocol.headerSize)
        return try HandsCallCodec.decodeCall(kind: kind, payload: Array(bytes.dropFirst(HandsCallProtocol.headerSize)))
    }

    func decodeReply(_ bytes: [UInt8]) throws -> HandsReply {
        let (kind, _) = try HandsCallCodec.payloadLength(header: Array(bytes.prefix(HandsCallProtocol.headerSize)))
        return try HandsCallCodec.decodeReply(kind: kind, payload: Array(bytes.dropFirst(HandsCallProtocol.headerSize)))
    }

    @Test(arguments: calls) func everyCallSurvivesARoundTrip(_ call: HandsCall) throws {
        #expect(try decode(HandsCallCodec.encode(call)) == call)
    }

    @Test func repliesSurviveARoundTrip() throws {
        for reply: HandsReply in [.ok(fields: [], data: []), .ok(fields: ["exited", "0", ""], data: [1, 2]),
                                  .failed(.denied, "denied by policy (tools.doors): no"), .failed(.noRoom, "")] {
            #expect(try decodeReply(HandsCallCodec.encode(reply)) == reply)
        }
    }

    @Test func theLayoutIsPinned() {
        // "MH", version 1, kind 0x22 (stop), 7-byte payload: one field of 1 byte... "a".
        #expect(HandsCallCodec.encode(.stop(agent: "a")) == [0x4D, 0x48, 1, 0x22, 7, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0x61])
        #expect(HandsCallCodec.encode(.whoami) == [0x4D, 0x48, 1, 0x23, 2, 0, 0, 0, 0, 0])
    }

    /// Every kind, byte for byte (the layout `HandsCallCodec` documents): "MH", version 1, the kind, the
    /// payload length (u32 LE); then the field count (u16 LE) and each field's length (u32 LE)
    /// and bytes; numbers are 4-byte fields, little-endian. Written out independently of the
    /// encoder, and decoded back.
    static let goldenCalls: [(HandsCall, [UInt8])] = [
        (.bucketPut(namespace: "c/1", key: "k", value: [0, 255]),
         [0x4D, 0x48, 0x01, 0x01, 0x14, 0x00, 0x00, 0x00, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x63, 0x2F, 0x31, 0x01, 0x00, 0x00, 0x00, 0x6B, 0x02, 0x00, 0x00, 0x00, 0x00, 0xFF]),
        (.bucketGet(namespace: "c/1", key: "k"),
         [0x4D, 0x48, 0x01, 0x02, 0x0E, 0x00, 0x00, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x63, 0x2F, 0x31, 0x01, 0x00, 0x00, 0x00, 0x6B]),
        (.bucketQuery(namespace: "c", keyPrefix: ""),
         [0x4D, 0x48, 0x01, 0x03, 0x0B, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x63, 0x00, 0x00, 0x00, 0x00]),
        (.doorSend(door: "d", to: "t", message: [0x68, 0x69], timeoutMilliseconds: 0x0102_0304),
         [0x4D, 0x48, 0x01, 0x10, 0x1A, 0x00, 0x00, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x64, 0x01, 0x00, 0x00, 0x00, 0x74, 0x02, 0x00, 0x00, 0x00, 0x68, 0x69, 0x04, 0x00, 0x00, 0x00, 0x04, 0x03, 0x02, 0x01]),
        (.doorReceive(door: "d", timeoutMilliseconds: 0),
         [0x4D, 0x48, 0x01, 0x11, 0x0F, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x64, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (.spawn(SpawnRequest(name: "a", policy: [0x76], policyFormat: "yaml", vcpus: 1, memoryMiB: 256, argv: ["x"], env: ["E=1"])),
         [0x4D, 0x48, 0x01, 0x20, 0x40, 0x00, 0x00, 0x00, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0x61, 0x01, 0x00, 0x00, 0x00, 0x76, 0x04, 0x00, 0x00, 0x00, 0x79, 0x61, 0x6D, 0x6C, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x78, 0x03, 0x00, 0x00, 0x00, 0x45, 0x3D, 0x31]),
        (.wait(agent: "a", timeoutMilliseconds: 0xFFFF_FFFF),
         [0x4D, 0x48, 0x01, 0x21, 0x0F, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x61, 0x04, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]),
        (.stop(agent: "a"),
         [0x4D, 0x48, 0x01, 0x22, 0x07, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x61]),
        (.whoami,
         [0x4D, 0x48, 0x01, 0x23, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (.install(ecosystem: "pip", requirements: ["a"]),
         [0x4D, 0x48, 0x01, 0x30, 0x0E, 0x00, 0x00, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x70, 0x69, 0x70, 0x01, 0x00, 0x00, 0x00, 0x61]),
        // The offset is an 8-byte field.
        (.installFile(install: "i1", file: 2, offset: 0x0102_0304_0506_0708),
         [0x4D, 0x48, 0x01, 0x31, 0x1C, 0x00, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00, 0x69, 0x31, 0x04, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
          0x08, 0x00, 0x00, 0x00, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01]),
    ]

    static let goldenReplies: [(HandsReply, [UInt8])] = [
        (.ok(fields: ["x"], data: [7]),
         [0x4D, 0x48, 0x01, 0x80, 0x0C, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x78, 0x01, 0x00, 0x00, 0x00, 0x07]),
        (.failed(.noRoom, "no"),
         [0x4D, 0x48, 0x01, 0x81, 0x10, 0x00, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x6E, 0x6F]),
    ]

    @Test func everyKindHasPinnedBytes() throws {
        let kinds = Set(Self.goldenCalls.map(\.0.kind)).union([.ok, .failed])
        #expect(kinds == Set(HandsCallKind.allCases))
        for (call, bytes) in Self.goldenCalls {
            #expect(HandsCallCodec.encode(call) == bytes, "\(call)")
            #expect(try decode(bytes) == call)
        }
        for (reply, bytes) in Self.goldenReplies {
            #expect(HandsCallCodec.encode(reply) == bytes, "\(reply)")
            #expect(try decodeReply(bytes) == reply)
        }
    }

    @Test func badHeadersAreRefusedFromTheHeaderAlone() {
        #expect(throws: HandsCallError.badMagic(0x4444)) { try HandsCallCodec.payloadLength(header: [0x44, 0x44, 1, 1, 0, 0, 0, 0]) }
        #expect(throws: HandsCallError.unsupportedVersion(2)) { try HandsCallCodec.payloadLength(header: [0x4D, 0x48, 2, 1, 0, 0, 0, 0]) }
        #expect(throws: HandsCallError.unknownKind(0x7f)) { try HandsCallCodec.payloadLength(header: [0x4D, 0x48, 1, 0x7f, 0, 0, 0, 0]) }
        #expect(throws: HandsCallError.tooLarge(length: Int(UInt32.max), limit: HandsCallProtocol.maxPayload)) {
            try HandsCallCodec.payloadLength(header: [0x4D, 0x48, 1, 1, 0xff, 0xff, 0xff, 0xff])
        }
        #expect(throws: HandsCallError.truncated) { try HandsCallCodec.payloadLength(header: [0x4D, 0x48, 1]) }
    }

    @Test func malformedPayloadsAreRefused() {
        // A field announcing more bytes than follow.
        #expect(throws: HandsCallError.truncated) { try HandsCallCodec.decodeCall(kind: .stop, payload: [1, 0, 9, 0, 0, 0, 0x61]) }
        // Bytes after the last field.
        #expect(throws: HandsCallError.trailingBytes(1)) { try HandsCallCodec.decodeCall(kind: .whoami, payload: [0, 0, 7]) }
        // Too few and too many fields.
        #expect(throws: HandsCallError.malformed(.bucketGet, "too few fields (1)")) { try HandsCallCodec.decodeCall(kind: .bucketGet, payload: [1, 0, 1, 0, 0, 0, 0x61]) }
        #expect(throws: HandsCallError.malformed(.whoami, "1 fields too many")) { try HandsCallCodec.decodeCall(kind: .whoami, payload: [1, 0, 1, 0, 0, 0, 0x61]) }
        // An empty name, a control character, a number that is not 4 bytes, invalid UTF-8.
        #expect(throws: HandsCallError.malformed(.stop, "field 1 is empty")) { try HandsCallCodec.decodeCall(kind: .stop, payload: [1, 0, 0, 0, 0, 0]) }
        #expect(throws: HandsCallError.malformed(.stop, "field 1 holds a control character")) { try HandsCallCodec.decodeCall(kind: .stop, payload: [1, 0, 1, 0, 0, 0, 0x0a]) }
        #expect(throws: HandsCallError.malformed(.stop, "field 1 is not UTF-8")) { try HandsCallCodec.decodeCall(kind: .stop, payload: [1, 0, 1, 0, 0, 0, 0xff]) }
        let shortNumber: [UInt8] = [2, 0, 1, 0, 0, 0, 0x61, 2, 0, 0, 0, 1, 0]
        #expect(throws: HandsCallError.malformed(.doorReceive, "field 2 is 2 bytes, a number has 4")) { try HandsCallCodec.decodeCall(kind: .doorReceive, payload: shortNumber) }
        // A reply is not a call, nor a call a reply.
        #expect(throws: HandsCallError.malformed(.ok, "a reply is not a call")) { try HandsCallCodec.decodeCall(kind: .ok, payload: [1, 0, 0, 0, 0, 0]) }
        #expect(throws: HandsCallError.malformed(.whoami, "a call is not a reply")) { try HandsCallCodec.decodeReply(kind: .whoami, payload: [0, 0]) }
    }

    @Test func aSpawnWithoutACommandIsRefused() throws {
        let bytes = HandsCallCodec.encode(.spawn(SpawnRequest(name: "a", policy: [], policyFormat: "yaml", vcpus: 1, memoryMiB: 1, argv: [])))
        #expect(throws: HandsCallError.malformed(.spawn, "argv must have 1 to 4096 entries, not 0")) { try decode(bytes) }
        let nine = HandsCallCodec.encode(.spawn(SpawnRequest(name: "a", policy: [], policyFormat: "yaml", vcpus: 1, memoryMiB: 1,
                                                             argv: ["x"], disks: (0..<9).map { "d\($0)" })))
        #expect(throws: HandsCallError.malformed(.spawn, "more than 8 disks")) { try decode(nine) }
    }

    @Test func installsAreBoundedAndChecked() throws {
        func fields(_ fields: [[UInt8]]) -> [UInt8] {
            fields.reduce([UInt8(fields.count), 0]) { $0 + [UInt8(truncatingIfNeeded: $1.count), UInt8(truncatingIfNeeded: $1.count >> 8), 0, 0] + $1 }
        }
        let pip = Array("pip".utf8)
        let cases: [(HandsCallKind, [UInt8], String)] = [
            (.install, fields([pip]), "an install names 1 to 64 requirements, not 0"),
            (.install, fields([pip] + Array(repeating: Array("a".utf8), count: 65)), "an install names 1 to 64 requirements, not 65"),
            (.install, fields([]), "too few fields (0)"),
            (.install, fields([[UInt8](repeating: 0x61, count: 17), Array("a".utf8)]), "field 1 is 17 bytes, at most 16"),
            (.install, fields([[], Array("a".utf8)]), "field 1 is empty"),
            (.install, fields([pip, Array("a".utf8), [UInt8](repeating: 0x61, count: 1025)]), "field 3 is 1025 bytes, at most 1024"),
            (.install, fields([pip, []]), "field 2 is empty"),
            (.install, fields([pip, Array("a\n--index-url x".utf8)]), "field 2 holds a control character"),
            (.install, fields([pip, [0xff]]), "field 2 is not UTF-8"),
            (.installFile, fields([Array("a b".utf8), [0, 0, 0, 0], [UInt8](repeating: 0, count: 8)]), "field 1 is not an install id (letters, digits and -)"),
            (.installFile, fields([Array("../x".utf8), [0, 0, 0, 0], [UInt8](repeating: 0, count: 8)]), "field 1 is not an install id (letters, digits and -)"),
            (.installFile, fields([[UInt8](repeating: 0x61, count: 65), [0, 0, 0, 0], [UInt8](repeating: 0, count: 8)]), "field 1 is 65 bytes, at most 64"),
            (.installFile, fields([[], [0, 0, 0, 0], [UInt8](repeating: 0, count: 8)]), "field 1 is empty"),
            (.installFile, fields([Array("i".utf8), [0, 0, 0, 0], [0, 0, 0, 0]]), "field 3 is 4 bytes, an offset has 8"),
            (.installFile, fields([Array("i".utf8), [UInt8](repeating: 0, count: 8), [UInt8](repeating: 0, count: 8)]), "field 2 is 8 bytes, a number has 4"),
            (.installFile, fields([Array("i".utf8), [0, 0, 0, 0]]), "too few fields (2)"),
            (.installFile, fields([Array("i".utf8), [0, 0, 0, 0], [UInt8](repeating: 0, count: 8), []]), "1 fields too many"),
        ]
        for (kind, payload, why) in cases {
            #expect(throws: HandsCallError.malformed(kind, why), "\(why)") { try HandsCallCodec.decodeCall(kind: kind, payload: payload) }
        }
        // At the bounds: 64 requirements of 1024 bytes, a 16-byte ecosystem, a 64-byte id.
        let most = HandsCall.install(ecosystem: String(repeating: "e", count: 16),
                                     requirements: Array(repeating: String(repeating: "r", count: 1024), count: 64))
        #expect(try decode(HandsCallCodec.encode(most)) == most)
        let longest = HandsCall.installFile(install: String(repeating: "A-9", count: 21) + "z", file: 1, offset: 1 << 40)
        #expect(try decode(HandsCallCodec.encode(longest)) == longest)
        #expect(HandsInstall.isInstallID("abc-XYZ-019") && !HandsInstall.isInstallID("") && !HandsInstall.isInstallID("a_b")
                && !HandsInstall.isInstallID("é"))
    }

    @Test func dataOverTheLimitIsRefused() throws {
        let big = [UInt8](repeating: 0, count: HandsCallProtocol.maxData + 1)
        let bytes = HandsCallCodec.encode(.bucketPut(namespace: "n", key: "k", value: big))
        #expect(throws: HandsCallError.malformed(.bucketPut, "field 3 is 1048577 bytes, at most 1048576")) { try decode(bytes) }
        let atLimit = HandsCallCodec.encode(.bucketPut(namespace: "n", key: "k", value: Array(big.dropLast())))
        #expect(try decode(atLimit) == .bucketPut(namespace: "n", key: "k", value: Array(big.dropLast())))
    }

    @Test func failuresMapToDistinctExitStatuses() {
        let statuses = HandsFailure.allCases.map(\.exitStatus)
        #expect(Set(statuses).count == statuses.count)
        #expect(HandsFailure.denied.exitStatus == 77 && HandsFailure.noRoom.exitStatus == 75)
    }
}

/// A reply the host builds from what a guest or a store holds is bounded when it is encoded:
/// it never traps and never exceeds what the caller's decoder accepts.
@Suite struct HandsReplyBoundsTests {
    static func roundTrip(_ reply: HandsReply) throws -> HandsReply {
        let bytes = HandsCallCodec.encode(reply)
        let (kind, length) = try HandsCallCodec.payloadLength(header: Array(bytes.prefix(HandsCallProtocol.headerSize)))
        #expect(length == bytes.count - HandsCallProtocol.headerSize)
        return try HandsCallCodec.decodeReply(kind: kind, payload: Array(bytes.dropFirst(HandsCallProtocol.headerSize)))
    }

    @Test func seventyThousandFieldsAreAFailureNotATrap() throws {
        // The field count is 16 bits on the wire: 65,536 fields or more trapped the host.
        let reply = try Self.roundTrip(.ok(fields: Array(repeating: "k", count: 70_000), data: []))
        guard case .failed(.failed, let message) = reply else { Issue.record("got \(reply)"); return }
        #expect(message.contains("70001 fields"))
    }

    @Test func moreFieldsThanTheDecoderTakesAreAFailure() throws {
        let reply = try Self.roundTrip(.ok(fields: Array(repeating: "k", count: HandsCallProtocol.maxFields), data: []))
        guard case .failed(.failed, _) = reply else { Issue.record("got \(reply)"); return }
        // One fewer, with the data field, is exactly the most there may be.
        let most = try Self.roundTrip(.ok(fields: Array(repeating: "k", count: HandsCallProtocol.maxFields - 1), data: []))
        #expect(most == .ok(fields: Array(repeating: "k", count: HandsCallProtocol.maxFields - 1), data: []))
    }

    @Test func dataOverTheLimitIsAFailureNamingItsSize() throws {
        // A bucket value put by the operator can be 16 MiB; a reply carries 1 MiB of data.
        let reply = try Self.roundTrip(.ok(fields: [], data: [UInt8](repeating: 7, count: HandsCallProtocol.maxData + 1)))
        guard case .failed(.failed, let message) = reply else { Issue.record("got \(reply)"); return }
        #expect(message.contains("\(HandsCallProtocol.maxData + 1) bytes of data"))
    }

    @Test func fittingLinesStopsBeforeTheLimitsAndSaysSo() throws {
        let line = String(repeating: "x", count: 1000)
        let lines = Array(repeating: line, count: 2000)  // ~2 MB: over the payload limit
        let reply = HandsReply.fitting(lines: lines, more: { "showed \($0) of \(lines.count)" })
        guard case .ok(let fields, let data) = try Self.roundTrip(reply) else { Issue.record("not ok"); return }
        #expect(fields.count > 1000 && fields.count < 2000)
        #expect(String(decoding: data, as: UTF8.self) == "showed \(fields.count) of 2000")
        // Lines that fit come back whole, with no marker.
        #expect(HandsReply.fitting(lines: ["a", "b"], more: { "\($0)" }) == .ok(fields: ["a", "b"], data: []))
    }
}
