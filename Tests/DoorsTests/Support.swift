import TestRandom
import Testing
import Doors

/// A frame built by hand, independent of the encoder, for feeding the decoder bad bytes.
func rawFrame(
    type: UInt8,
    requestID: UInt32 = 1,
    payload: [UInt8] = [],
    version: UInt8? = nil,
    magic: UInt16 = 0x444D,
    flags: UInt32 = 0,
    length: UInt32? = nil
) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes += le(magic)
    // Hello's header, and a connection-level Error's, say the handshake version; every other
    // frame's, the session's.
    let handshaking = type == 0x01 || (type == 0x02 && requestID == 0)
    bytes += [version ?? (handshaking ? DoorsProtocol.handshakeVersion : DoorsProtocol.currentVersion), type]
    bytes += le(flags) + le(requestID) + le(length ?? UInt32(payload.count))
    return bytes + payload
}

func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}

/// A length-prefixed string as the payloads carry it.
func str(_ s: String) -> [UInt8] {
    le(UInt32(s.utf8.count)) + Array(s.utf8)
}

func str(bytes: [UInt8]) -> [UInt8] {
    le(UInt32(bytes.count)) + bytes
}

func encode(_ frame: Frame) throws -> [UInt8] {
    try FrameEncoder().encode(frame)
}

/// Every frame in `bytes`, fed to a fresh decoder in one piece.
func decodeAll(_ bytes: [UInt8], maxPayload: Int = DoorsProtocol.maxPayload) throws -> [Frame] {
    var decoder = FrameDecoder(maxPayload: maxPayload)
    decoder.append(bytes)
    var frames: [Frame] = []
    while let frame = try decoder.next() { frames.append(frame) }
    #expect(decoder.bufferedByteCount == 0)
    return frames
}

/// The single frame in `bytes`, or the error decoding it throws.
func decodeOne(_ bytes: [UInt8]) throws(DoorsError) -> Frame? {
    var decoder = FrameDecoder()
    decoder.append(bytes)
    return try decoder.next()
}

/// The problem the decoder reports for a payload of `type` (on request 1, or 0 for Hello).
func problem(_ type: FrameType, _ payload: [UInt8], requestID: UInt32? = nil) -> PayloadProblem? {
    let requestID = requestID ?? (type == .hello ? 0 : 1)
    do {
        _ = try decodeOne(rawFrame(type: type.rawValue, requestID: requestID, payload: payload))
        return nil
    } catch {
        guard case .invalidFrame(let got, let id, let problem) = error, got == type, id == requestID else { return nil }
        return problem
    }
}

/// The problem the encoder reports for `message`.
func encodeProblem(_ message: DoorsMessage, requestID: UInt32? = nil) -> PayloadProblem? {
    let requestID = requestID ?? (message.type == .hello ? 0 : 1)
    do {
        _ = try FrameEncoder().encode(Frame(requestID: requestID, message))
        return nil
    } catch {
        guard case .invalidFrame(_, _, let problem) = error else { return nil }
        return problem
    }
}

/// Random valid messages of every type, with non-ASCII text, empty and full-size data.
struct MessageGenerator {
    var rng: SeededGenerator

    private static let scalars: [String] = [
        "a", "Z", "0", "-", "_", ".", " ", "é", "ß", "Ω", "日", "本", "🚪", "👩‍💻", "\u{301}", "ç", "\t", "=",
    ]

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func bool() -> Bool { Bool.random(using: &rng) }
    mutating func u64() -> UInt64 { rng.next() }
    mutating func u32() -> UInt32 { UInt32(truncatingIfNeeded: rng.next()) }

    mutating func text(maxScalars: Int, avoiding: Set<String> = []) -> String {
        var s = ""
        for _ in 0..<int(0...maxScalars) {
            let piece = Self.scalars[int(0...Self.scalars.count - 1)]
            if !avoiding.contains(piece) { s += piece }
        }
        return s
    }

    mutating func path() -> String {
        var path = ""
        for _ in 0..<int(0...4) { path += "/" + text(maxScalars: 8) }
        return path.isEmpty ? "/" : path
    }

    mutating func name() -> String {
        let name = text(maxScalars: 12)
        return name.isEmpty || name == "." || name == ".." ? "n" + name : name
    }

    mutating func data() -> [UInt8] {
        switch int(0...9) {
        case 0: return []
        case 1: return [UInt8](repeating: 0xA5, count: DoorsProtocol.maxPayload)
        default: return (0..<int(1...300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        }
    }

    mutating func fileType() -> FileType { FileType.allCases[int(0...FileType.allCases.count - 1)] }
    mutating func signal() -> UInt8 { UInt8(int(1...Int(DoorsLimits.maxSignal))) }
    mutating func permissions() -> UInt32 { UInt32(int(0...Int(DoorsLimits.maxPermissions))) }

    mutating func message(_ type: FrameType) -> DoorsMessage {
        switch type {
        case .hello:
            let versions = (0..<int(1...DoorsLimits.maxVersions)).map { _ in UInt8(int(1...255)) }
            let maxPayload = UInt32(int(DoorsProtocol.minimumMaxPayload...Int(UInt32.max)))
            return .hello(Hello(versions: versions, maxPayload: maxPayload, software: text(maxScalars: 20)))
        case .error:
            let code = ErrorCode.allCases[int(0...ErrorCode.allCases.count - 1)]
            let errno: Int32? = bool() ? Int32(truncatingIfNeeded: u32()) : nil
            return .error(ErrorReply(code: code, errno: errno, message: text(maxScalars: 40)))
        case .ok: return .ok(count: u64())
        case .ping: return .ping(nonce: u64())
        case .pong: return .pong(nonce: u64())
        case .cancel: return .cancel
        case .exec:
            let argv = ["p" + text(maxScalars: 6, avoiding: ["/"])] + (0..<int(0...6)).map { _ in text(maxScalars: 10) }
            let env = (0..<int(0...5)).map { _ in "K" + text(maxScalars: 4) + "=" + text(maxScalars: 8) }
            return .exec(
                ExecRequest(
                    argv: argv, env: env, cwd: bool() ? path() : nil, sendsStdin: bool(),
                    timeoutMilliseconds: bool() ? UInt32(int(1...Int(UInt32.max))) : nil))
        case .started: return .started(pid: Int32(int(1...Int(Int32.max))))
        case .stdinData: return .stdinData(data())
        case .stdinEnd: return .stdinEnd
        case .stdoutData: return .stdoutData(data())
        case .stderrData: return .stderrData(data())
        case .exit:
            let status: Termination = bool() ? .exited(code: UInt8(int(0...255))) : .signaled(signal: signal())
            return .exit(ExitReport(status: status, timedOut: bool()))
        case .kill: return .kill(signal: signal())
        case .writeFile:
            return .writeFile(
                WriteFileRequest(path: path(), permissions: permissions(), options: WriteOptions(rawValue: UInt8(int(0...15)))))
        case .readFile:
            return .readFile(ReadFileRequest(path: path(), offset: u64(), length: bool() ? u64() : nil))
        case .fileData: return .fileData(data())
        case .fileEnd: return .fileEnd
        case .stat: return .stat(StatRequest(path: path(), followSymlinks: bool()))
        case .statResult:
            return .statResult(
                FileStat(
                    type: fileType(), permissions: permissions(), size: u64(),
                    mtimeSeconds: Int64(bitPattern: u64()), mtimeNanoseconds: UInt32(int(0...999_999_999)),
                    nlink: u64(), uid: u32(), gid: u32()))
        case .list: return .list(path: path())
        case .listEntries:
            return .listEntries((0..<int(0...20)).map { _ in DirectoryEntry(name: name(), type: fileType()) })
        case .listEnd: return .listEnd
        case .mkdir: return .mkdir(MkdirRequest(path: path(), permissions: permissions(), parents: bool()))
        case .remove: return .remove(RemoveRequest(path: path(), recursive: bool()))
        case .resolve: return .resolve(path: path())
        case .resolved: return .resolved(path: path())
        }
    }

    mutating func frame() -> Frame {
        let type = FrameType.allCases[int(0...FrameType.allCases.count - 1)]
        let id: UInt32 =
            switch type {
            case .hello: 0
            case .error: bool() ? 0 : UInt32(int(1...Int(UInt32.max)))
            default: UInt32(int(1...Int(UInt32.max)))
            }
        return Frame(requestID: id, message(type))
    }
}
