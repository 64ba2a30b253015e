import Doors

/// A hands call frame as momin-init's relay and the host's listener read it: the 8-byte header
/// judged alone, then the payload as a call, or as a reply.
enum HandsCallTarget {
    static func run(_ input: [UInt8]) {
        let header = Array(input.prefix(HandsCallProtocol.headerSize))
        guard let (kind, length) = try? HandsCallCodec.payloadLength(header: header) else { return }
        guard length <= HandsCallProtocol.maxPayload else { violated("a \(length)-byte payload passed the header check") }
        let payload = Array(input.dropFirst(HandsCallProtocol.headerSize).prefix(length))
        guard payload.count == length else { return }
        let frame = header + payload
        if let call = try? HandsCallCodec.decodeCall(kind: kind, payload: payload) {
            guard HandsCallCodec.encode(call) == frame else { violated("call \(kind) re-encodes to other bytes") }
        }
        if let reply = try? HandsCallCodec.decodeReply(kind: kind, payload: payload) {
            guard HandsCallCodec.encode(reply) == frame else { violated("reply \(kind) re-encodes to other bytes") }
        }
    }
}
