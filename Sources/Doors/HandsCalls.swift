/// Calls an agent makes from inside its VM to the host: the in-guest `hands` client sends one to
/// momin-init's local socket, momin-init relays it over vsock to host port `HandsCallProtocol.port`,
/// and the host's gateway judges, logs and answers it (docs/hands.md).
///
/// One call per connection: the caller writes one request frame, the host writes one reply
/// frame and closes. A frame is an 8-byte header, all little-endian:
///
///     0  magic (UInt16, "MH")   2  version (UInt8, 1)   3  kind (UInt8)
///     4  payload length (UInt32)
///
/// then the payload: a UInt16 field count and that many fields, each a UInt32 length and its
/// bytes. What each field of a kind means is fixed by position (`HandsCall.fields`); a number is
/// a 4-byte field (an offset an 8-byte one), little-endian. Every bound is checked before
/// anything is allocated for it.
public enum HandsCallProtocol {
    public static let magic: UInt16 = 0x484D
    public static let version: UInt8 = 1
    public static let headerSize = 8
    /// The host port momin-init connects to (kernel parameter momin.hands overrides it).
    public static let port: UInt32 = 1025
    /// The largest value one bucket put or door message carries.
    public static let maxData = 1 << 20
    /// The largest payload: one `maxData` blob and room for the other fields.
    public static let maxPayload = maxData + (1 << 18)
    /// Fields in one frame (a spawn carries its argv and environment as fields).
    public static let maxFields = 2 * DoorsLimits.maxArguments + 16
    /// Bytes in a name (agent, door, bucket namespace, key).
    public static let maxNameLength = 255
}

/// The kind byte of a frame: requests below 0x80, replies from 0x80.
public enum HandsCallKind: UInt8, CaseIterable, Sendable {
    case bucketPut = 0x01
    case bucketGet = 0x02
    case bucketQuery = 0x03
    case doorSend = 0x10
    case doorReceive = 0x11
    case spawn = 0x20
    case wait = 0x21
    case stop = 0x22
    case whoami = 0x23
    case install = 0x30
    case installFile = 0x31

    case ok = 0x80
    case failed = 0x81
}

/// A sub-agent to start: its name under the caller (`NAME` of `hands spawn --name NAME`), its
/// policy file's bytes and format, its machine, the caller's disks it is to have (by name,
/// read-only; `momin-root`: boot on the caller's root image), and the command it runs.
public struct SpawnRequest: Hashable, Sendable {
    public var name: String
    public var policy: [UInt8]
    /// "yaml" or "json": how the policy bytes parse.
    public var policyFormat: String
    public var vcpus: UInt32
    public var memoryMiB: UInt32
    public var argv: [String]
    public var env: [String]
    public var disks: [String]

    /// The most disks a spawn may name (a VM has at most 8).
    public static let maxDisks = 8

    public init(name: String, policy: [UInt8], policyFormat: String, vcpus: UInt32, memoryMiB: UInt32,
                argv: [String], env: [String] = [], disks: [String] = []) {
        self.name = name
        self.policy = policy
        self.policyFormat = policyFormat
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
        self.argv = argv
        self.env = env
        self.disks = disks
    }
}

public enum HandsCall: Hashable, Sendable {
    case bucketPut(namespace: String, key: String, value: [UInt8])
    case bucketGet(namespace: String, key: String)
    /// The newest entry of each key under `keyPrefix` ("" for all).
    case bucketQuery(namespace: String, keyPrefix: String)
    /// Waits up to `timeoutMilliseconds` for room in the recipient's queue (back-pressure).
    case doorSend(door: String, to: String, message: [UInt8], timeoutMilliseconds: UInt32)
    /// Waits up to `timeoutMilliseconds` for a message on `door`.
    case doorReceive(door: String, timeoutMilliseconds: UInt32)
    case spawn(SpawnRequest)
    /// Waits up to `timeoutMilliseconds` for one of the caller's sub-agents to finish.
    case wait(agent: String, timeoutMilliseconds: UInt32)
    /// Stops one of the caller's sub-agents and everything it started.
    case stop(agent: String)
    /// The caller's own name and its parent's.
    case whoami
    /// Packages for the caller: the host resolves `requirements` (PEP 508) and their
    /// dependencies, judges, fetches and logs every file, and answers the install's id and its
    /// files (`InstallManifest`).
    case install(ecosystem: String, requirements: [String])
    /// Up to `HandsCallProtocol.maxData` bytes of file `file` (its index in the manifest) of
    /// install `install`, from `offset`; none at or past the file's end.
    case installFile(install: String, file: UInt32, offset: UInt64)

    public var kind: HandsCallKind {
        switch self {
        case .bucketPut: .bucketPut
        case .bucketGet: .bucketGet
        case .bucketQuery: .bucketQuery
        case .doorSend: .doorSend
        case .doorReceive: .doorReceive
        case .spawn: .spawn
        case .wait: .wait
        case .stop: .stop
        case .whoami: .whoami
        case .install: .install
        case .installFile: .installFile
        }
    }
}

/// Why a call failed, as the reply carries it; `hands` exits with `exitStatus`.
public enum HandsFailure: UInt16, CaseIterable, Sendable {
    /// The caller's policy, the peer's, or a limit said no (exit 77, as `momin run`'s denials).
    case denied = 1
    /// No such key, agent or sub-agent.
    case notFound = 2
    /// The call was malformed (a bad name, an unknown kind).
    case invalid = 3
    /// Nothing arrived, or no room came free, in the time given.
    case timedOut = 4
    /// The host has no room for the sub-agent (exit 75, as momin's own).
    case noRoom = 5
    /// The host failed (a VM that did not boot, a log that did not write).
    case failed = 6

    public var exitStatus: Int32 {
        switch self {
        case .denied: 77
        case .notFound: 2
        case .invalid: 64
        case .timedOut: 124
        case .noRoom: 75
        case .failed: 70
        }
    }
}

public enum HandsReply: Hashable, Sendable {
    /// Text fields (a key list, a sender's name, an exit status) and one data blob (a value, a message).
    case ok(fields: [String], data: [UInt8])
    case failed(HandsFailure, String)

    /// An `ok` reply of `lines`, as many as a frame carries: when they do not all fit, the
    /// first ones that do, with `more(shown)` as the reply's data, the marker the caller shows.
    public static func fitting(lines: [String], more: (Int) -> String) -> HandsReply {
        if HandsCallCodec.excess(fields: lines, data: []) == nil { return .ok(fields: lines, data: []) }
        // Room kept for the marker: a line of text.
        let reserve = 4 + DoorsLimits.maxMessageLength
        var size = 2 + reserve
        var shown = 0
        for line in lines {
            let next = size + 4 + line.utf8.count
            guard shown + 2 <= HandsCallProtocol.maxFields, next <= HandsCallProtocol.maxPayload else { break }
            size = next
            shown += 1
        }
        return .ok(fields: Array(lines.prefix(shown)), data: Array(more(shown).utf8.prefix(DoorsLimits.maxMessageLength)))
    }
}

public enum HandsCallError: Error, Hashable, Sendable, CustomStringConvertible {
    case badMagic(UInt16)
    case unsupportedVersion(UInt8)
    case unknownKind(UInt8)
    case tooLarge(length: Int, limit: Int)
    case truncated
    case trailingBytes(Int)
    /// The kind's fields are not what it needs: a wrong count, a bad number, invalid UTF-8.
    case malformed(HandsCallKind, String)

    public var description: String {
        switch self {
        case .badMagic(let magic): "bad magic 0x\(String(magic, radix: 16)), expected 0x\(String(HandsCallProtocol.magic, radix: 16))"
        case .unsupportedVersion(let version): "hands call version \(version) is not spoken here (only \(HandsCallProtocol.version))"
        case .unknownKind(let kind): "unknown hands call kind 0x\(String(kind, radix: 16))"
        case .tooLarge(let length, let limit): "a \(length)-byte payload is over the \(limit)-byte limit"
        case .truncated: "the frame ends inside a field"
        case .trailingBytes(let count): "\(count) bytes follow the last field"
        case .malformed(let kind, let why): "\(kind) call: \(why)"
        }
    }
}

/// Encodes and decodes hands frames. Pure; no I/O.
public enum HandsCallCodec {
    public static func encode(_ call: HandsCall) -> [UInt8] {
        frame(call.kind, fields(of: call))
    }

    /// A reply the caller's decoder will take. One that would not (more fields, data or payload
    /// than a frame may carry: a bucket value put by the operator can be 16 MiB) is sent as a
    /// failure that says what was over, never as a frame the caller refuses or a count that
    /// does not fit its 16 bits.
    public static func encode(_ reply: HandsReply) -> [UInt8] {
        switch reply {
        case .ok(let fields, let data):
            if let excess = excess(fields: fields, data: data) {
                return encode(.failed(.failed, "the host's reply is over what a hands frame carries: \(excess)"))
            }
            return frame(.ok, fields.map { Array($0.utf8) } + [data])
        case .failed(let failure, let message):
            return frame(.failed, [le(UInt32(failure.rawValue)), Array(message.utf8.prefix(DoorsLimits.maxMessageLength))])
        }
    }

    /// What an `ok` reply has past the decoder's bounds, or nil when it fits.
    static func excess(fields: [String], data: [UInt8]) -> String? {
        if fields.count + 1 > HandsCallProtocol.maxFields {
            return "\(fields.count + 1) fields (at most \(HandsCallProtocol.maxFields))"
        }
        if data.count > HandsCallProtocol.maxData {
            return "\(data.count) bytes of data (at most \(HandsCallProtocol.maxData))"
        }
        let payload = okPayloadSize(fields: fields, data: data)
        if payload > HandsCallProtocol.maxPayload {
            return "a \(payload)-byte payload (at most \(HandsCallProtocol.maxPayload))"
        }
        return nil
    }

    /// The payload size of an `ok` reply: the field count, then each field's length and bytes.
    static func okPayloadSize(fields: [String], data: [UInt8]) -> Int {
        fields.reduce(2 + 4 + data.count) { $0 + 4 + $1.utf8.count }
    }

    /// The payload length a header announces, checked against the limit; the caller then
    /// reads exactly that many bytes.
    public static func payloadLength(header: [UInt8]) throws(HandsCallError) -> (HandsCallKind, Int) {
        guard header.count >= HandsCallProtocol.headerSize else { throw .truncated }
        let magic = UInt16(header[0]) | UInt16(header[1]) << 8
        guard magic == HandsCallProtocol.magic else { throw .badMagic(magic) }
        guard header[2] == HandsCallProtocol.version else { throw .unsupportedVersion(header[2]) }
        guard let kind = HandsCallKind(rawValue: header[3]) else { throw .unknownKind(header[3]) }
        let length = Int(u32(header, at: 4))
        guard length <= HandsCallProtocol.maxPayload else { throw .tooLarge(length: length, limit: HandsCallProtocol.maxPayload) }
        return (kind, length)
    }

    public static func decodeCall(kind: HandsCallKind, payload: [UInt8]) throws(HandsCallError) -> HandsCall {
        var f = try FieldList(payload, kind: kind)
        let call: HandsCall
        switch kind {
        case .bucketPut: call = .bucketPut(namespace: try f.name(), key: try f.name(), value: try f.data())
        case .bucketGet: call = .bucketGet(namespace: try f.name(), key: try f.name())
        case .bucketQuery: call = .bucketQuery(namespace: try f.name(), keyPrefix: try f.name(allowEmpty: true))
        case .doorSend:
            call = .doorSend(door: try f.name(), to: try f.name(), message: try f.data(), timeoutMilliseconds: try f.number())
        case .doorReceive: call = .doorReceive(door: try f.name(), timeoutMilliseconds: try f.number())
        case .spawn:
            let name = try f.name()
            let policy = try f.data()
            let format = try f.name()
            let vcpus = try f.number()
            let memory = try f.number()
            let diskCount = Int(try f.number())
            guard diskCount <= SpawnRequest.maxDisks else { throw .malformed(kind, "more than \(SpawnRequest.maxDisks) disks") }
            var disks: [String] = []
            for _ in 0..<diskCount { disks.append(try f.name()) }
            let argc = Int(try f.number())
            guard argc >= 1, argc <= DoorsLimits.maxArguments else { throw .malformed(kind, "argv must have 1 to \(DoorsLimits.maxArguments) entries, not \(argc)") }
            var argv: [String] = []
            for _ in 0..<argc { argv.append(try f.text(max: DoorsLimits.maxArgumentLength)) }
            var env: [String] = []
            while !f.isAtEnd { env.append(try f.text(max: DoorsLimits.maxArgumentLength)) }
            guard env.count <= DoorsLimits.maxEnvironment else { throw .malformed(kind, "more than \(DoorsLimits.maxEnvironment) environment entries") }
            call = .spawn(SpawnRequest(name: name, policy: policy, policyFormat: format, vcpus: vcpus, memoryMiB: memory, argv: argv, env: env,
                                       disks: disks))
        case .wait: call = .wait(agent: try f.name(), timeoutMilliseconds: try f.number())
        case .stop: call = .stop(agent: try f.name())
        case .whoami: call = .whoami
        case .install:
            let ecosystem = try f.name(max: HandsInstall.maxEcosystemLength)
            let count = f.count - 1
            guard count >= 1, count <= HandsInstall.maxRequirements else {
                throw .malformed(kind, "an install names 1 to \(HandsInstall.maxRequirements) requirements, not \(count)")
            }
            var requirements: [String] = []
            for _ in 0..<count { requirements.append(try f.name(max: HandsInstall.maxRequirementLength)) }
            call = .install(ecosystem: ecosystem, requirements: requirements)
        case .installFile:
            let install = try f.name(max: HandsInstall.maxInstallIDLength)
            guard HandsInstall.isInstallID(install) else {
                throw .malformed(kind, "field 1 is not an install id (letters, digits and -)")
            }
            call = .installFile(install: install, file: try f.number(), offset: try f.number64())
        case .ok, .failed: throw .malformed(kind, "a reply is not a call")
        }
        try f.finish()
        return call
    }

    public static func decodeReply(kind: HandsCallKind, payload: [UInt8]) throws(HandsCallError) -> HandsReply {
        var f = try FieldList(payload, kind: kind)
        switch kind {
        case .ok:
            guard f.count >= 1 else { throw .malformed(kind, "no data field") }
            var fields: [String] = []
            for _ in 0..<(f.count - 1) { fields.append(try f.text(max: HandsCallProtocol.maxPayload)) }
            let data = try f.data()
            try f.finish()
            return .ok(fields: fields, data: data)
        case .failed:
            let raw = try f.number()
            let message = try f.text(max: DoorsLimits.maxMessageLength)
            try f.finish()
            // A code this build does not know still fails the call.
            return .failed(HandsFailure(rawValue: UInt16(clamping: raw)) ?? .failed, message)
        default:
            throw .malformed(kind, "a call is not a reply")
        }
    }

    /// The fields of a call, in the order `decodeCall` reads them.
    static func fields(of call: HandsCall) -> [[UInt8]] {
        switch call {
        case .bucketPut(let namespace, let key, let value): [Array(namespace.utf8), Array(key.utf8), value]
        case .bucketGet(let namespace, let key): [Array(namespace.utf8), Array(key.utf8)]
        case .bucketQuery(let namespace, let prefix): [Array(namespace.utf8), Array(prefix.utf8)]
        case .doorSend(let door, let to, let message, let timeout): [Array(door.utf8), Array(to.utf8), message, le(timeout)]
        case .doorReceive(let door, let timeout): [Array(door.utf8), le(timeout)]
        case .spawn(let request):
            [Array(request.name.utf8), request.policy, Array(request.policyFormat.utf8), le(request.vcpus), le(request.memoryMiB),
             le(UInt32(request.disks.count))] + request.disks.map { Array($0.utf8) }
                + [le(UInt32(request.argv.count))] + request.argv.map { Array($0.utf8) } + request.env.map { Array($0.utf8) }
        case .wait(let agent, let timeout): [Array(agent.utf8), le(timeout)]
        case .stop(let agent): [Array(agent.utf8)]
        case .whoami: []
        case .install(let ecosystem, let requirements): [Array(ecosystem.utf8)] + requirements.map { Array($0.utf8) }
        case .installFile(let install, let file, let offset): [Array(install.utf8), le(file), le64(offset)]
        }
    }

    /// Callers keep `fields` within `maxFields` (replies through `excess`, calls through the
    /// hands client's argument checks), so the count fits its 16 bits.
    private static func frame(_ kind: HandsCallKind, _ fields: [[UInt8]]) -> [UInt8] {
        precondition(fields.count <= Int(UInt16.max), "a hands frame of \(fields.count) fields")
        var payload: [UInt8] = [UInt8(fields.count & 0xff), UInt8(fields.count >> 8)]
        for field in fields {
            payload += le(UInt32(field.count))
            payload += field
        }
        var out: [UInt8] = [UInt8(HandsCallProtocol.magic & 0xff), UInt8(HandsCallProtocol.magic >> 8), HandsCallProtocol.version, kind.rawValue]
        out += le(UInt32(payload.count))
        return out + payload
    }

    static func le(_ value: UInt32) -> [UInt8] { [UInt8(value & 0xff), UInt8(value >> 8 & 0xff), UInt8(value >> 16 & 0xff), UInt8(value >> 24)] }

    static func le64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) } }

    static func u32(_ bytes: [UInt8], at index: Int) -> UInt32 {
        UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2]) << 16 | UInt32(bytes[index + 3]) << 24
    }
}

/// The fields of one payload, taken front to back.
private struct FieldList {
    let kind: HandsCallKind
    private var fields: [ArraySlice<UInt8>] = []
    private var next = 0

    init(_ payload: [UInt8], kind: HandsCallKind) throws(HandsCallError) {
        self.kind = kind
        guard payload.count >= 2 else { throw .truncated }
        let count = Int(payload[0]) | Int(payload[1]) << 8
        guard count <= HandsCallProtocol.maxFields else { throw .malformed(kind, "\(count) fields, at most \(HandsCallProtocol.maxFields)") }
        var index = 2
        for _ in 0..<count {
            guard payload.count - index >= 4 else { throw .truncated }
            let length = Int(HandsCallCodec.u32(payload, at: index))
            index += 4
            guard payload.count - index >= length else { throw .truncated }
            fields.append(payload[index..<index + length])
            index += length
        }
        guard index == payload.count else { throw .trailingBytes(payload.count - index) }
    }

    var count: Int { fields.count }
    var isAtEnd: Bool { next == fields.count }

    private mutating func take() throws(HandsCallError) -> ArraySlice<UInt8> {
        guard next < fields.count else { throw .malformed(kind, "too few fields (\(fields.count))") }
        defer { next += 1 }
        return fields[next]
    }

    mutating func data() throws(HandsCallError) -> [UInt8] {
        let field = try take()
        guard field.count <= HandsCallProtocol.maxData else { throw .malformed(kind, "field \(next) is \(field.count) bytes, at most \(HandsCallProtocol.maxData)") }
        return Array(field)
    }

    mutating func text(max: Int) throws(HandsCallError) -> String {
        let field = try take()
        guard field.count <= max else { throw .malformed(kind, "field \(next) is \(field.count) bytes, at most \(max)") }
        guard let text = String(validating: field, as: UTF8.self) else { throw .malformed(kind, "field \(next) is not UTF-8") }
        return text
    }

    /// A name: non-empty (unless allowed), at most `max` bytes, no NUL or control bytes.
    mutating func name(allowEmpty: Bool = false, max: Int = HandsCallProtocol.maxNameLength) throws(HandsCallError) -> String {
        let text = try text(max: max)
        guard allowEmpty || !text.isEmpty else { throw .malformed(kind, "field \(next) is empty") }
        guard !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) else { throw .malformed(kind, "field \(next) holds a control character") }
        return text
    }

    mutating func number() throws(HandsCallError) -> UInt32 {
        let field = try take()
        guard field.count == 4 else { throw .malformed(kind, "field \(next) is \(field.count) bytes, a number has 4") }
        let bytes = Array(field)
        return HandsCallCodec.u32(bytes, at: 0)
    }

    mutating func number64() throws(HandsCallError) -> UInt64 {
        let field = try take()
        guard field.count == 8 else { throw .malformed(kind, "field \(next) is \(field.count) bytes, an offset has 8") }
        return field.reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    func finish() throws(HandsCallError) {
        guard next == fields.count else { throw .malformed(kind, "\(fields.count - next) fields too many") }
    }
}
