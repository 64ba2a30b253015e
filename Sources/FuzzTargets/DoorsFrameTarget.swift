import Doors

/// The guest's bytes as momin's Doors client reads them (docs/doors-protocol.md): appended to a
/// `FrameDecoder` in chunks whose sizes come from the input itself.
enum DoorsFrameTarget {
    static func run(_ input: [UInt8]) {
        guard let first = input.first else { return }
        let stream = Array(input.dropFirst())
        // Chunks of 1 to 256 bytes, so frames also arrive cut at every place.
        let chunk = Int(first) + 1
        var decoder = FrameDecoder()
        var offset = 0
        var decoded: [UInt8] = []
        while offset < stream.count {
            let size = min(chunk, stream.count - offset, decoder.freeCapacity)
            guard size > 0 else { return }
            decoder.append(stream[offset..<offset + size])
            offset += size
            while true {
                let frame: Frame
                do {
                    guard let next = try decoder.next() else { break }
                    frame = next
                } catch {
                    return  // refused: the connection ends here
                }
                // The encoding is canonical: a frame decodes only from the bytes that encode it.
                let again: [UInt8]
                do { again = try FrameEncoder().encode(frame) } catch { violated("a decoded frame does not encode: \(error)") }
                decoded += again
                guard stream.starts(with: decoded) else { violated("frame \(frame.type) re-encodes to other bytes") }
            }
        }
    }
}
