/// Why a Brain call's bytes were refused. `status` is what the relay answers the guest: 400 (or
/// 413 for a body too large) for the guest's own request, 502 for what the provider sent back
/// (RFC 9110 §15.5.1, §15.5.14, §15.6.3).
public struct BrainWireError: Error, Sendable, Equatable, CustomStringConvertible {
    public let status: Int
    public let description: String

    public init(status: Int, _ description: String) {
        self.status = status
        self.description = description
    }

    static func request(_ description: String) -> BrainWireError { BrainWireError(status: 400, description) }
    static func response(_ description: String) -> BrainWireError { BrainWireError(status: 502, description) }

    /// A JSON value's text for a message: at most 64 bytes, control and non-ASCII bytes as \xHH.
    static func quote(_ bytes: ArraySlice<UInt8>) -> String {
        var out = ""
        for byte in bytes.prefix(64) {
            if byte >= 0x20 && byte < 0x7F { out.unicodeScalars.append(Unicode.Scalar(byte)) } else {
                out += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return out + (bytes.count > 64 ? "…" : "")
    }
}
