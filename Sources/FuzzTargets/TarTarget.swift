import ImageLayers

/// A layer as `momin image import` reads it: the tar reader over the input's bytes, with small
/// limits. Every entry it returns has data of exactly its declared size, within the limits;
/// every path the layer rules accept is relative, with no `..`, `.` or empty component and no
/// NUL; nothing read is more than the input.
enum TarTarget {
    static let limits = TarLimits(entries: 64, bytes: 1 << 20, nameBytes: 4096, extendedHeaderBytes: 8192)

    static func run(_ input: [UInt8]) {
        var reader = TarReader(MemorySource(input), limits: limits)
        var entries = 0
        while true {
            let next: TarEntry?
            do { next = try reader.next() } catch { return }
            guard let entry = next else { break }
            entries += 1
            var read: UInt64 = 0
            while true {
                let chunk: ArraySlice<UInt8>?
                do { chunk = try reader.readData(limit: 4096) } catch { return }
                guard let chunk else { break }
                read += UInt64(chunk.count)
            }
            guard read == entry.size else { violated("entry \(entry.path) read \(read) bytes of its \(entry.size)") }
            guard entry.path.utf8.count <= limits.nameBytes, entry.mode <= 0o7777 else { violated("entry \(entry.path) out of limits") }
            if let (components, _) = try? LayerPath.normalize(entry.path) {
                for component in components where component.isEmpty || component == "." || component == ".."
                    || component.utf8.contains(0) || component.contains("/") {
                    violated("normalised path \(components) of \(entry.path) has component '\(component)'")
                }
                if let name = components.last, case .whiteout(let target)? = try? LayerPath.role(of: name), target.isEmpty || target == ".." {
                    violated("whiteout \(name) names '\(target)'")
                }
            }
        }
        guard reader.consumed <= UInt64(input.count), entries <= limits.entries else {
            violated("read \(reader.consumed) bytes of \(input.count), \(entries) entries")
        }
    }
}
