import Merkle
import SignedLog

/// The canonical leaf bytes of a record, version 1 (docs/audit.md, "Leaf encoding"):
///
///     u8 version (1) · u8 tag · u64 index · u64 time · fields of the tag
///
/// all integers big-endian, strings UTF-8 and byte strings as u32 length + bytes, digests as 32
/// raw bytes. One record has exactly one encoding and decoding accepts only that encoding (no
/// trailing bytes, no unknown tags), so equal leaf hashes mean equal records. The index is part
/// of the leaf, so a row moved to another position no longer matches its place.
extension AuditRecord {
    public static let encodingVersion: UInt8 = 1
    /// Bound on one string or byte field, so a hostile row cannot make the decoder allocate much.
    public static let maximumFieldLength = LeafWriter.maximumFieldLength

    /// A new tag is a new kind of record: the bytes of every existing record stay as they are, so
    /// the version byte stays; a log that holds one is a newer schema version (PRAGMA
    /// user_version), which an older momin refuses before it reads a leaf. Tags are never reused.
    enum Tag: UInt8 {
        case toolRequest = 1, decision, resultDigest, vmStart, vmStop, policyLoad
        /// Schema version 2 (which had not been released when these were added).
        case runRefused, diskAttach, diskDetach, connectionEnd
        /// Schema version 2 as well (still unreleased when it was added).
        case brainCall
        /// A tool request with the caller who asked for it through the API: the fields of
        /// `toolRequest`, then the caller. Schema version 2 (still unreleased).
        case callerToolRequest
    }

    /// The canonical bytes; throws only for a string or byte field over `maximumFieldLength`.
    public func leafData() throws(LeafFormatError) -> [UInt8] {
        var out = LeafWriter()
        out.u8(Self.encodingVersion)
        switch event {
        case .toolRequest(let request): out.u8((request.caller == nil ? Tag.toolRequest : Tag.callerToolRequest).rawValue)
        case .decision: out.u8(Tag.decision.rawValue)
        case .resultDigest: out.u8(Tag.resultDigest.rawValue)
        case .lifecycle(.vmStart): out.u8(Tag.vmStart.rawValue)
        case .lifecycle(.vmStop): out.u8(Tag.vmStop.rawValue)
        case .lifecycle(.policyLoad): out.u8(Tag.policyLoad.rawValue)
        case .lifecycle(.runRefused): out.u8(Tag.runRefused.rawValue)
        case .lifecycle(.diskAttach): out.u8(Tag.diskAttach.rawValue)
        case .lifecycle(.diskDetach): out.u8(Tag.diskDetach.rawValue)
        case .connectionEnd: out.u8(Tag.connectionEnd.rawValue)
        case .brainCall: out.u8(Tag.brainCall.rawValue)
        }
        out.u64(index)
        out.u64(time)
        switch event {
        case .toolRequest(let request):
            out.u64(request.requestID)
            out.string(request.agent)
            out.string(request.tool)
            out.bytes(request.arguments)
            if let caller = request.caller { out.string(caller) }
        case .decision(let decision):
            out.u64(decision.requestID)
            out.u8(decision.verdict.rawValue)
            out.string(decision.rule)
            out.string(decision.reason)
        case .resultDigest(let result):
            out.u64(result.requestID)
            out.u64(UInt64(bitPattern: result.status))
            out.u64(result.byteCount)
            out.digest(result.sha256)
        case .lifecycle(.vmStart(let vm)):
            out.string(vm)
        case .lifecycle(.vmStop(let vm, let reason)):
            out.string(vm)
            out.string(reason)
        case .lifecycle(.policyLoad(let source, let sha256)):
            out.string(source)
            out.digest(sha256)
        case .lifecycle(.runRefused(let vm, let reason)):
            out.string(vm)
            out.string(reason)
        case .lifecycle(.diskAttach(let disk)), .lifecycle(.diskDetach(let disk)):
            out.string(disk.vm)
            out.string(disk.name)
            out.string(disk.path)
            out.u8(disk.writable ? 1 : 0)
            out.u64(disk.size)
            out.string(disk.identity)
            out.u8(disk.sha256 == nil ? 0 : 1)
            if let digest = disk.sha256 { out.digest(digest) }
        case .connectionEnd(let end):
            out.u64(end.requestID)
            out.string(end.address)
            out.u64(end.bytesSent)
            out.u64(end.bytesReceived)
            out.u64(end.durationMilliseconds)
            out.string(end.end)
            out.bytes(end.sentContent)
            out.bytes(end.receivedContent)
        case .brainCall(let call):
            out.u64(call.requestID)
            out.string(call.model)
            out.u64(call.status)
            out.u64(call.promptTokens)
            out.u64(call.completionTokens)
            out.u8(call.usage.rawValue)
            out.digest(call.requestSHA256)
            out.digest(call.responseSHA256)
            out.u64(call.bytesSent)
            out.u64(call.bytesReceived)
            out.u64(call.durationMilliseconds)
            out.string(call.end)
            out.bytes(call.requestContent)
            out.bytes(call.responseContent)
        }
        if let field = out.oversized {
            throw LeafFormatError("a field of \(field) bytes is over the limit of \(Self.maximumFieldLength)")
        }
        return out.bytes
    }

    static func diskState(_ reader: inout LeafReader) throws(LeafFormatError) -> DiskState {
        let vm = try reader.string("vm"), name = try reader.string("disk name"), path = try reader.string("disk path")
        let writable = try reader.u8("writable")
        guard writable <= 1 else { throw LeafFormatError("writable is \(writable), not 0 or 1") }
        let size = try reader.u64("disk size"), identity = try reader.string("disk identity")
        let hasDigest = try reader.u8("has digest")
        guard hasDigest <= 1 else { throw LeafFormatError("has digest is \(hasDigest), not 0 or 1") }
        return DiskState(vm: vm, name: name, path: path, writable: writable == 1, size: size, identity: identity,
                         sha256: hasDigest == 1 ? try reader.digest("disk digest") : nil)
    }

    /// The fields every leaf starts with, read without decoding the rest.
    struct Header: Equatable {
        var tag: Tag
        var index: UInt64
        var time: UInt64
    }

    static func header(of data: [UInt8]) throws(LeafFormatError) -> Header {
        var reader = LeafReader(data)
        let version = try reader.u8("version")
        guard version == encodingVersion else { throw LeafFormatError("unknown encoding version \(version)") }
        let tagByte = try reader.u8("tag")
        guard let tag = Tag(rawValue: tagByte) else { throw LeafFormatError("unknown event tag \(tagByte)") }
        return Header(tag: tag, index: try reader.u64("index"), time: try reader.u64("time"))
    }

    /// Decodes canonical leaf bytes; throws for anything `leafData` would not have produced.
    public init(leafData data: [UInt8]) throws(LeafFormatError) {
        let header = try Self.header(of: data)
        var reader = LeafReader(data)
        reader.offset = 18
        let event: AuditEvent
        switch header.tag {
        case .toolRequest, .callerToolRequest:
            var request = ToolRequest(
                requestID: try reader.u64("request id"), agent: try reader.string("agent"),
                tool: try reader.string("tool"), arguments: try reader.bytes("arguments"))
            if header.tag == .callerToolRequest { request.caller = try reader.string("caller") }
            event = .toolRequest(request)
        case .decision:
            let requestID = try reader.u64("request id")
            let verdictByte = try reader.u8("verdict")
            guard let verdict = Decision.Verdict(rawValue: verdictByte) else {
                throw LeafFormatError("unknown verdict \(verdictByte)")
            }
            event = .decision(Decision(requestID: requestID, verdict: verdict,
                                       rule: try reader.string("rule"), reason: try reader.string("reason")))
        case .resultDigest:
            event = .resultDigest(ResultDigest(
                requestID: try reader.u64("request id"), status: Int64(bitPattern: try reader.u64("status")),
                byteCount: try reader.u64("byte count"), sha256: try reader.digest("result digest")))
        case .vmStart:
            event = .lifecycle(.vmStart(vm: try reader.string("vm")))
        case .vmStop:
            event = .lifecycle(.vmStop(vm: try reader.string("vm"), reason: try reader.string("reason")))
        case .policyLoad:
            event = .lifecycle(.policyLoad(source: try reader.string("source"), sha256: try reader.digest("policy digest")))
        case .runRefused:
            event = .lifecycle(.runRefused(vm: try reader.string("vm"), reason: try reader.string("reason")))
        case .diskAttach:
            event = .lifecycle(.diskAttach(try Self.diskState(&reader)))
        case .diskDetach:
            event = .lifecycle(.diskDetach(try Self.diskState(&reader)))
        case .connectionEnd:
            event = .connectionEnd(ConnectionEnd(
                requestID: try reader.u64("request id"), address: try reader.string("address"), bytesSent: try reader.u64("bytes sent"),
                bytesReceived: try reader.u64("bytes received"), durationMilliseconds: try reader.u64("duration"),
                end: try reader.string("end"), sentContent: try reader.bytes("content sent"), receivedContent: try reader.bytes("content received")))
        case .brainCall:
            let requestID = try reader.u64("request id"), model = try reader.string("model"), status = try reader.u64("status")
            let prompt = try reader.u64("prompt tokens"), completion = try reader.u64("completion tokens")
            let usageByte = try reader.u8("usage")
            guard let usage = BrainCall.Usage(rawValue: usageByte) else { throw LeafFormatError("unknown usage source \(usageByte)") }
            event = .brainCall(BrainCall(
                requestID: requestID, model: model, status: status, promptTokens: prompt, completionTokens: completion, usage: usage,
                requestSHA256: try reader.digest("request digest"), responseSHA256: try reader.digest("response digest"),
                bytesSent: try reader.u64("bytes sent"), bytesReceived: try reader.u64("bytes received"),
                durationMilliseconds: try reader.u64("duration"), end: try reader.string("end"),
                requestContent: try reader.bytes("request content"), responseContent: try reader.bytes("response content")))
        }
        guard reader.offset == data.count else {
            throw LeafFormatError("\(data.count - reader.offset) bytes after the last field")
        }
        self.init(index: header.index, time: header.time, event: event)
    }
}

/// Leaf bytes that are not a canonical record, or a record too large to encode.
public struct LeafFormatError: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

struct LeafReader {
    let data: [UInt8]
    var offset = 0

    init(_ data: [UInt8]) { self.data = data }

    mutating func take(_ count: Int, _ field: String) throws(LeafFormatError) -> ArraySlice<UInt8> {
        guard count <= data.count - offset else { throw LeafFormatError("truncated in the \(field)") }
        defer { offset += count }
        return data[offset..<offset + count]
    }

    mutating func u8(_ field: String) throws(LeafFormatError) -> UInt8 {
        try take(1, field).first!
    }

    mutating func u64(_ field: String) throws(LeafFormatError) -> UInt64 {
        try take(8, field).reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func bytes(_ field: String) throws(LeafFormatError) -> [UInt8] {
        let count = Int(try take(4, field).reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        guard count <= AuditRecord.maximumFieldLength else { throw LeafFormatError("the \(field) claims \(count) bytes") }
        return Array(try take(count, field))
    }

    mutating func string(_ field: String) throws(LeafFormatError) -> String {
        let raw = try bytes(field)
        guard let text = String(validating: raw, as: UTF8.self) else { throw LeafFormatError("the \(field) is not UTF-8") }
        return text
    }

    mutating func digest(_ field: String) throws(LeafFormatError) -> MerkleHash {
        MerkleHash(bytes: try take(MerkleHash.byteCount, field))!
    }
}
