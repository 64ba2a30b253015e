/// Constants of the virtio socket device (virtio 1.2 §5.10).
public enum Vsock {
    /// The well-known CID of the host (§5.10.4: 0-2 are reserved, 2 is the host).
    public static let hostCID: UInt64 = 2
    /// The smallest CID a guest may have.
    public static let minimumGuestCID: UInt64 = 3
    /// Stream sockets (§5.10.6): the only type this device carries.
    public static let typeStream: UInt16 = 1
    /// Seqpacket sockets: not offered (VIRTIO_VSOCK_F_SEQPACKET is not negotiated), answered with RST.
    public static let typeSeqpacket: UInt16 = 2
    /// SHUTDOWN flags (§5.10.6.5): the sender will receive no more / send no more.
    public static let shutdownReceive: UInt32 = 1
    public static let shutdownSend: UInt32 = 2
    /// The most payload one packet may carry either way. Linux never sends more
    /// (VIRTIO_VSOCK_MAX_PKT_BUF_SIZE); Firecracker caps packets at the same size.
    public static let maximumPayload = 64 * 1024
}

/// The `op` field of a packet header (§5.10.6).
public enum VsockOp: UInt16, Sendable, CustomStringConvertible {
    case request = 1
    case response = 2
    case rst = 3
    case shutdown = 4
    case rw = 5
    case creditUpdate = 6
    case creditRequest = 7

    public var description: String {
        switch self {
        case .request: "REQUEST"
        case .response: "RESPONSE"
        case .rst: "RST"
        case .shutdown: "SHUTDOWN"
        case .rw: "RW"
        case .creditUpdate: "CREDIT_UPDATE"
        case .creditRequest: "CREDIT_REQUEST"
        }
    }
}

/// `struct virtio_vsock_hdr` (§5.10.6): 44 bytes, little-endian, packed. Every field is kept
/// as the guest wrote it (an unknown op or type is a value like any other); the device decides
/// what to do with it.
public struct VsockHeader: Equatable, Sendable {
    public static let size = 44

    public var sourceCID: UInt64
    public var destinationCID: UInt64
    public var sourcePort: UInt32
    public var destinationPort: UInt32
    /// Payload bytes following the header.
    public var length: UInt32
    public var type: UInt16
    public var op: UInt16
    public var flags: UInt32
    /// The sender's receive buffer for this connection, and how many bytes of it it has freed
    /// so far (§5.10.6.3).
    public var bufferAllocation: UInt32
    public var forwardCount: UInt32

    public init(sourceCID: UInt64, destinationCID: UInt64, sourcePort: UInt32, destinationPort: UInt32,
                length: UInt32 = 0, type: UInt16 = Vsock.typeStream, op: UInt16, flags: UInt32 = 0,
                bufferAllocation: UInt32 = 0, forwardCount: UInt32 = 0) {
        self.sourceCID = sourceCID
        self.destinationCID = destinationCID
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.length = length
        self.type = type
        self.op = op
        self.flags = flags
        self.bufferAllocation = bufferAllocation
        self.forwardCount = forwardCount
    }

    /// The op as a known operation, or nil for a value §5.10.6 does not define.
    public var operation: VsockOp? { VsockOp(rawValue: op) }

    /// Decodes the first 44 bytes of `bytes`; nil if there are fewer.
    public init?(decoding bytes: [UInt8]) {
        guard bytes.count >= Self.size else { return nil }
        func le<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            var v: T = 0
            for i in 0..<MemoryLayout<T>.size { v |= T(bytes[at + i]) << (8 * i) }
            return v
        }
        self.init(
            sourceCID: le(0, UInt64.self), destinationCID: le(8, UInt64.self),
            sourcePort: le(16, UInt32.self), destinationPort: le(20, UInt32.self),
            length: le(24, UInt32.self), type: le(28, UInt16.self), op: le(30, UInt16.self),
            flags: le(32, UInt32.self), bufferAllocation: le(36, UInt32.self), forwardCount: le(40, UInt32.self))
    }

    /// The 44 wire bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.size)
        func put<T: FixedWidthInteger>(_ v: T) {
            for i in 0..<MemoryLayout<T>.size { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
        }
        put(sourceCID); put(destinationCID); put(sourcePort); put(destinationPort); put(length)
        put(type); put(op); put(flags); put(bufferAllocation); put(forwardCount)
        return out
    }
}

/// Why a packet from the guest's TX queue is dropped without being acted on. The guest is
/// hostile: these are the checks every header passes before anything in it is believed.
public enum VsockPacketRejection: Error, Equatable, Sendable, CustomStringConvertible {
    /// The chain's readable bytes do not hold a whole header.
    case shortHeader(bytes: Int)
    /// `len` is more than the chain actually holds after the header.
    case lengthBeyondChain(length: UInt32, available: Int)
    /// `len` is more than one packet may carry.
    case lengthTooLarge(length: UInt32)
    /// `src_cid` is not the guest's own CID (a guest may not speak for another).
    case wrongSourceCID(UInt64)
    /// `dst_cid` is not the host; this device reaches nothing else.
    case wrongDestinationCID(UInt64)

    public var description: String {
        switch self {
        case .shortHeader(let n): "vsock packet of \(n) bytes is shorter than its 44-byte header"
        case .lengthBeyondChain(let l, let a): "vsock packet claims \(l) payload bytes but its chain holds \(a)"
        case .lengthTooLarge(let l): "vsock packet claims \(l) payload bytes, more than \(Vsock.maximumPayload)"
        case .wrongSourceCID(let c): "vsock packet from CID \(c), not the guest's"
        case .wrongDestinationCID(let c): "vsock packet to CID \(c), not the host (2)"
        }
    }

    /// Checks a TX packet's header against the chain that carried it (`payloadBytes`: the
    /// chain's readable bytes after the header) and the guest's CID.
    public static func check(_ header: VsockHeader, payloadBytes: Int, guestCID: UInt64) -> VsockPacketRejection? {
        if Int(header.length) > payloadBytes { return .lengthBeyondChain(length: header.length, available: payloadBytes) }
        if Int(header.length) > Vsock.maximumPayload { return .lengthTooLarge(length: header.length) }
        if header.sourceCID != guestCID { return .wrongSourceCID(header.sourceCID) }
        if header.destinationCID != Vsock.hostCID { return .wrongDestinationCID(header.destinationCID) }
        return nil
    }
}
