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
        .wait(agent: "a", timeoutMilliseconds: .max),
        .stop(agent: "triage.a"),
        .whoami,
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
        #expect(throws: HandsCallError.self) { try HandsCallCodec.decodeCall(kind: .bucketGet, payload: [1, 0, 1, 0, 0, 0, 0x61]) }
        #expect(throws: HandsCallError.self) { try HandsCallCodec.decodeCall(kind: .whoami, payload: [1, 0, 1, 0, 0, 0, 0x61]) }
        // An empty name, a control character, a number that is not 4 bytes, invalid UTF-8.
        #expect(throws: HandsCallError.self) { try HandsCallCodec.decodeCall(kind: .stop, payload: [1, 0, 0, 0, 0, 0]) }
        #expect(throws: HandsCallError.self) { try HandsCallCodec.decodeCall(kind: .stop, payload: [1, 0, 1, 0, 0, 0, 0x0a]) }
        #expect(throws: HandsCallError.self) { try HandsCallCodec.decodeCall(kind: .stop, payload: [1, 0, 1, 0, 0, 0, 0xff]) }
        let shortNumber: [UInt8] = [2, 0, 1, 0, 0, 0, 0x61, 2, 0, 0, 0, 1, 0]
        #expect(throws: HandsCallError.self) { try HandsCallCodec.decodeCall(kind: .doorReceive, payload: shortNumber) }
        // A reply is not a call, nor a call a reply.
        #expect(throws: HandsCallError.self) { try HandsCallCodec.decodeCall(kind: .ok, payload: [1, 0, 0, 0, 0, 0]) }
        #expect(throws: HandsCallError.self) { try HandsCallCodec.decodeReply(kind: .whoami, payload: [0, 0]) }
    }

    @Test func aSpawnWithoutACommandIsRefused() throws {
        let bytes = HandsCallCodec.encode(.spawn(SpawnRequest(name: "a", policy: [], policyFormat: "yaml", vcpus: 1, memoryMiB: 1, argv: [])))
        #expect(throws: HandsCallError.self) { try decode(bytes) }
    }

    @Test func dataOverTheLimitIsRefused() throws {
        let big = [UInt8](repeating: 0, count: HandsCallProtocol.maxData + 1)
        let bytes = HandsCallCodec.encode(.bucketPut(namespace: "n", key: "k", value: big))
        #expect(throws: HandsCallError.self) { try decode(bytes) }
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
