extension ByteSource {
    /// Up to `count` bytes, fewer only at the end.
    package mutating func read(count: Int) throws(ImageError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = try read(into: &bytes, at: filled)
            if n == 0 { break }
            filled += n
        }
        return Array(bytes.prefix(filled))
    }

    /// One read into `bytes` from `offset` on.
    package mutating func read(into bytes: inout [UInt8], at offset: Int) throws(ImageError) -> Int {
        var failure: ImageError?
        let n = bytes.withUnsafeMutableBytes { raw -> Int in
            do throws(ImageError) { return try read(into: UnsafeMutableRawBufferPointer(rebasing: raw[offset...])) } catch {
                failure = error
                return 0
            }
        }
        if let failure { throw failure }
        return n
    }
}

/// Lowercase hex of `bytes`.
package func hexBytes(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}
