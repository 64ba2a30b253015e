import Crypto
import Glibc
import POSIX

/// An image's SHA-256, the name it is kept under in the store: `sha256:` and 64 lowercase hex digits.
public struct ImageDigest: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The 64 hex digits.
    public let hex: String

    /// `sha256:HEX` or bare HEX (64 hex digits, either case); nil otherwise.
    public init?(_ text: String) {
        let digits = text.hasPrefix("sha256:") ? String(text.dropFirst(7)) : text
        guard digits.utf8.count == 64, digits.utf8.allSatisfy(\.isHexDigit) else { return nil }
        hex = digits.lowercased()
    }

    public var description: String { "sha256:" + hex }
    /// The first 12 hex digits, as `momin image ls` shows them.
    public var short: String { String(hex.prefix(12)) }

    public static func < (a: ImageDigest, b: ImageDigest) -> Bool { a.hex < b.hex }

    /// The SHA-256 of the file at `path`, read 1 MiB at a time.
    public static func ofFile(_ path: String) throws(ImageError) -> ImageDigest {
        let fd = retryingEINTR { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw .failed("cannot read \(path): \(describeErrno())") }
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { raw in retryingEINTR { read(fd, raw.baseAddress, raw.count) } }
            if count < 0 { throw .failed("cannot read \(path): \(describeErrno())") }
            if count == 0 { break }
            buffer.withUnsafeBytes { raw in hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: raw[..<count])) }
        }
        return ImageDigest(hexBytes(Array(hasher.finalize())))!
    }
}

/// SHA-256 of `text`'s UTF-8, as hex.
func sha256Hex(_ text: String) -> String { hexBytes(SHA256.hash(data: Array(text.utf8))) }

extension UInt8 {
    var isHexDigit: Bool { (0x30...0x39).contains(self) || (0x41...0x46).contains(self) || (0x61...0x66).contains(self) }
}
