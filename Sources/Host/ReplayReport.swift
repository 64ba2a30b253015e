import Gateway
import Merkle

/// What `momin replay` prints (docs/replay.md): each call identical or not, for each that differs
/// what differed (the request, the decision or the result), and for the first model call or
/// plain HTTP request whose request changed, the byte where it parted from the recording as sent
/// out; then the share of identical calls.
public struct ReplayReport {
    public private(set) var lines: [String] = []
    public private(set) var identical = true

    /// `recordedRequest`: a recorded exchange's request bytes by digest; `divergedRequest`: the
    /// replay's first request through a tool that had no recorded answer.
    public init(recorded: [CallObservation], replayed: [CallObservation], recordedRequest: (MerkleHash) -> [UInt8]?,
                divergedRequest: (String) -> [UInt8]?) {
        var same = 0
        var explained = false
        for index in 0..<max(recorded.count, replayed.count) {
            let then = index < recorded.count ? recorded[index] : nil
            let now = index < replayed.count ? replayed[index] : nil
            let number = index + 1
            guard let then else {
                lines.append("call \(number): made only in the replay: \(now!.tool), \(Self.describe(now!))")
                continue
            }
            guard let now else {
                lines.append("call \(number): not made in the replay: recorded \(then.tool), \(Self.describe(then))")
                continue
            }
            if now == then {
                same += 1
                lines.append("call \(number): identical (\(then.tool))")
                continue
            }
            lines.append("call \(number): differs (\(then.tool)\(now.tool == then.tool ? "" : ", now \(now.tool)")): "
                         + "recorded \(Self.describe(then)), now \(Self.describe(now))")
            if now.tool != then.tool || now.arguments != then.arguments {
                lines.append("  the request differs: \(Self.divergence(Array(then.arguments), Array(now.arguments)))")
                // The bytes as sent out, for the first request that parted from the recording.
                if !explained, let exchange = then.exchange, let before = recordedRequest(exchange.request), let after = divergedRequest(then.tool) {
                    explained = true
                    lines.append("  the \(then.tool) request as sent out differs: \(Self.divergence(before, after))")
                }
            } else if now.allowed != then.allowed || now.rule != then.rule {
                lines.append("  the same request was judged differently")
            } else {
                lines.append("  the same request gave a different result")
            }
        }
        identical = same == recorded.count && replayed.count == recorded.count
        let total = recorded.count
        let percent = total == 0 ? 100.0 : Double(same) * 100 / Double(total)
        lines.append("replay: \(same) of \(total) calls identical (\(Self.format(percent))%)")
    }

    static func describe(_ call: CallObservation) -> String {
        guard call.allowed else { return "denied by \(call.rule)" }
        return "status \(call.status.map(String.init) ?? "-"), \(call.byteCount) bytes, sha256 \(call.digest?.hex.prefix(16) ?? "-")…"
    }

    /// Where `after` parts from `before`: the byte offset, and up to 40 bytes of each from there,
    /// printable ASCII with the rest escaped.
    static func divergence(_ before: [UInt8], _ after: [UInt8]) -> String {
        var offset = 0
        while offset < before.count, offset < after.count, before[offset] == after[offset] { offset += 1 }
        if offset == before.count && offset == after.count { return "the bytes are the same" }
        func excerpt(_ bytes: [UInt8]) -> String {
            guard offset < bytes.count else { return "(ends)" }
            let piece = bytes[offset..<min(bytes.count, offset + 40)]
            var text = "\""
            for byte in piece {
                switch byte {
                case 0x22: text += "\\\""
                case 0x5C: text += "\\\\"
                case 0x0A: text += "\\n"
                case 0x20..<0x7F: text.append(Character(Unicode.Scalar(byte)))
                default: text += "\\x" + String(byte, radix: 16).leftPadded(to: 2)
                }
            }
            return text + "\"" + (offset + 40 < bytes.count ? "…" : "")
        }
        return "from byte \(offset) (of \(before.count) recorded, \(after.count) now): recorded \(excerpt(before)), now \(excerpt(after))"
    }

    static func format(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
