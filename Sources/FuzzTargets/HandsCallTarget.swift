import Doors

/// A hands call frame as momin-init's relay and the host's listener read it: the 8-byte header
/// judged alone, then the payload as a call, or as a reply; an `ok` reply's fields also as an
/// install's manifest, which must render back to the same lines.
enum HandsCallTarget {
    /// A failure code this build does not know still fails the call, as `.failed`, so such a
    /// reply re-encodes with code 6: the one spelling that is not canonical, on purpose (a newer
    /// host's code reaches an older guest as a failure). The fuzzer found it first.
    static func unknownFailure(_ reply: HandsReply, _ payload: [UInt8]) -> Bool {
        guard case .failed(.failed, _) = reply, payload.count >= 10 else { return false }
        let code = payload[6...9].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return HandsFailure(rawValue: UInt16(clamping: code)) == nil
    }


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
            guard HandsCallCodec.encode(reply) == frame || unknownFailure(reply, payload) else {
                violated("reply \(kind) re-encodes to other bytes")
            }
            if case .ok(let fields, _) = reply, let manifest = try? InstallManifest(fields: fields) {
                guard manifest.fields == fields else { violated("an install manifest renders to other lines") }
            }
        }
    }
}
