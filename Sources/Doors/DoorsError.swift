/// Everything that can go wrong encoding, decoding or negotiating Doors frames.
///
/// The first group describes the byte stream itself: once a decoder has thrown one of them it
/// cannot find the next frame boundary, so the connection must be closed (`isFatal`).
/// `invalidFrame` describes the contents of one well-delimited frame: the decoder has already
/// stepped past it, and the connection may answer with an Error frame and carry on.
public enum DoorsError: Error, Hashable, Sendable {
    /// The first two header bytes were not `DoorsProtocol.magic`.
    case badMagic(UInt16)
    /// The header's version byte is not one this side accepts.
    case unsupportedVersion(UInt8)
    /// The header's type byte names no frame type.
    case unknownFrameType(UInt8)
    /// The header's flags carry bits this version does not define (v1 defines none).
    case unknownFlags(UInt32)
    /// The header announces, or an encoder was handed, a payload over the limit.
    case payloadTooLarge(length: Int, limit: Int)
    /// More bytes were appended to a decoder than it may hold; the excess was dropped.
    case bufferOverflow(limit: Int)
    /// A frame arrived whole but its payload or request id breaks the format.
    case invalidFrame(FrameType, requestID: UInt32, PayloadProblem)
    /// The two Hellos share no version.
    case noCommonVersion(local: [UInt8], remote: [UInt8])

    /// Whether a decoder that threw this has lost the frame boundaries for good.
    public var isFatal: Bool {
        switch self {
        case .invalidFrame: false
        default: true
        }
    }

    /// The Error frame to send the peer about this failure: tied to the offending request when
    /// the frame was whole, to request id 0 (the connection) otherwise.
    public var reply: Frame {
        switch self {
        case .invalidFrame(_, let requestID, let problem):
            let code: ErrorCode =
                switch problem {
                case .countOverBound, .lengthOverBound: .tooLarge
                default: .invalidRequest
                }
            return Frame(requestID: requestID, .error(ErrorReply(code: code, message: description)))
        case .unsupportedVersion, .noCommonVersion:
            return Frame(requestID: 0, .error(ErrorReply(code: .unsupportedVersion, message: description)))
        case .payloadTooLarge, .bufferOverflow:
            return Frame(requestID: 0, .error(ErrorReply(code: .tooLarge, message: description)))
        case .badMagic, .unknownFrameType, .unknownFlags:
            return Frame(requestID: 0, .error(ErrorReply(code: .malformedFrame, message: description)))
        }
    }
}

extension DoorsError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .badMagic(let magic): "bad magic 0x\(hex(magic)), expected 0x\(hex(DoorsProtocol.magic))"
        case .unsupportedVersion(let version): "frame version \(version) is not accepted"
        case .unknownFrameType(let type): "unknown frame type 0x\(hex(type))"
        case .unknownFlags(let flags): "unknown header flags 0x\(hex(flags))"
        case .payloadTooLarge(let length, let limit): "payload of \(length) bytes is over the limit of \(limit)"
        case .bufferOverflow(let limit): "more than \(limit) bytes appended to the decoder before draining it"
        case .invalidFrame(let type, let requestID, let problem): "\(type) frame for request \(requestID): \(problem)"
        case .noCommonVersion(let local, let remote): "no common protocol version (local \(local), remote \(remote))"
        }
    }
}

/// What is wrong inside one frame, naming the field at fault.
public enum PayloadProblem: Error, Hashable, Sendable {
    /// The payload ends before the field does.
    case truncated(DoorsField)
    /// Bytes remain after the last field.
    case trailingBytes(count: Int)
    /// A string field is not valid UTF-8.
    case invalidUTF8(DoorsField)
    /// A list has more entries than its bound.
    case countOverBound(DoorsField, count: Int, bound: Int)
    /// A string is longer than its bound (bytes).
    case lengthOverBound(DoorsField, length: Int, bound: Int)
    /// An enum, boolean, option tag or flag byte holds a value this version does not define.
    case unknownValue(DoorsField, UInt64)
    /// A number is outside its allowed range (a pid of 0, signal 99, permissions above 0o7777).
    case outOfRange(DoorsField, Int64)
    /// A field that must not be empty is.
    case empty(DoorsField)
    /// A string that reaches a C API contains a NUL byte.
    case containsNUL(DoorsField)
    /// A path does not start with "/".
    case notAbsolute(DoorsField)
    /// A string has the wrong shape (an environment entry without "=", an entry name with "/").
    case malformed(DoorsField)
    /// Hello frames travel on request id 0 only.
    case requestIDMustBeZero(UInt32)
    /// Only Error frames may use request id 0.
    case requestIDMustBeNonzero
}

extension PayloadProblem: CustomStringConvertible {
    public var description: String {
        switch self {
        case .truncated(let field): "payload ends inside \(field)"
        case .trailingBytes(let count): "\(count) bytes after the last field"
        case .invalidUTF8(let field): "\(field) is not valid UTF-8"
        case .countOverBound(let field, let count, let bound): "\(field) has \(count) entries, bound is \(bound)"
        case .lengthOverBound(let field, let length, let bound): "\(field) is \(length) bytes long, bound is \(bound)"
        case .unknownValue(let field, let value): "\(field) has unknown value \(value)"
        case .outOfRange(let field, let value): "\(field) value \(value) is out of range"
        case .empty(let field): "\(field) is empty"
        case .containsNUL(let field): "\(field) contains a NUL byte"
        case .notAbsolute(let field): "\(field) is not an absolute path"
        case .malformed(let field): "\(field) is malformed"
        case .requestIDMustBeZero(let id): "request id must be 0, not \(id)"
        case .requestIDMustBeNonzero: "request id 0 is reserved for the connection"
        }
    }
}

/// The payload fields named in `PayloadProblem`.
public enum DoorsField: String, Hashable, Sendable {
    case versions, maxPayload, software
    case errorCode, errno, message
    case count, nonce
    case argv, env, cwd, sendsStdin, timeout, program
    case pid, exitKind, exitCode, signal, timedOut
    case path, permissions, writeOptions, offset, length
    case followSymlinks, fileType, size, mtimeSeconds, mtimeNanoseconds, nlink, uid, gid
    case entries, entryName
    case parents, recursive
}

extension DoorsField: CustomStringConvertible {
    public var description: String { rawValue }
}

func hex<T: BinaryInteger>(_ value: T) -> String {
    String(value, radix: 16, uppercase: true)
}
