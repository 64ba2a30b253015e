/// Turns frames into bytes for one connection. Before the handshake use the defaults; after it,
/// `init(session:)`, so frames carry the agreed version and stay within the peer's limit.
public struct FrameEncoder: Hashable, Sendable {
    /// The version written into every header except a Hello's and a connection-level Error's
    /// (always `handshakeVersion`).
    public var version: UInt8
    /// The largest payload the peer accepts.
    public var maxPayload: Int

    public init(version: UInt8 = DoorsProtocol.currentVersion, maxPayload: Int = DoorsProtocol.maxPayload) {
        self.version = version
        self.maxPayload = maxPayload
    }

    public init(session: Session) {
        self.init(version: session.version, maxPayload: session.maxPayload)
    }

    /// The bytes of one frame. Throws `invalidFrame` for a message that breaks a bound or rule
    /// and `payloadTooLarge` for one over `maxPayload`; nothing is produced then.
    public func encode(_ frame: Frame) throws(DoorsError) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(DoorsProtocol.headerSize + frame.message.payloadSizeHint)
        try encode(frame, into: &bytes)
        return bytes
    }

    /// Appends one frame to `buffer`, so several frames can go out in one write. On a throw
    /// `buffer` is left as it was.
    public func encode(_ frame: Frame, into buffer: inout [UInt8]) throws(DoorsError) {
        let type = frame.type
        let hint = frame.message.payloadSizeHint
        guard hint <= maxPayload else { throw .payloadTooLarge(length: hint, limit: maxPayload) }
        let start = buffer.count
        do throws(PayloadProblem) {
            try Check.requestID(frame.requestID, for: type)
            buffer.reserveCapacity(start + DoorsProtocol.headerSize + hint)
            let header = FrameHeader(
                version: FrameHeader.carriesHandshakeVersion(type: type.rawValue, requestID: frame.requestID.littleEndian)
                    ? DoorsProtocol.handshakeVersion : version,
                type: type,
                requestID: frame.requestID,
                payloadLength: 0)
            header.write(into: &buffer)
            try frame.message.encodePayload(into: &buffer)
        } catch {
            buffer.removeSubrange(start...)
            throw .invalidFrame(type, requestID: frame.requestID, error)
        }
        let length = buffer.count - start - DoorsProtocol.headerSize
        guard length <= maxPayload else {
            buffer.removeSubrange(start...)
            throw .payloadTooLarge(length: length, limit: maxPayload)
        }
        buffer.withUnsafeMutableBytes {
            $0.storeBytes(of: UInt32(length).littleEndian, toByteOffset: start + 12, as: UInt32.self)
        }
    }
}

extension DoorsMessage {
    /// The exact payload size of a data frame, a small guess for the rest.
    var payloadSizeHint: Int {
        switch self {
        case .stdinData(let bytes), .stdoutData(let bytes), .stderrData(let bytes), .fileData(let bytes): bytes.count
        default: 64
        }
    }
}
