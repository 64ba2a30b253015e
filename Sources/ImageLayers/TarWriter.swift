/// A small tar writer for tests and fuzz seeds: ustar headers (POSIX.1-2017 pax, "ustar
/// Interchange Format"), a PAX `x` header or a GNU `L` header for names over 100 bytes, GNU
/// base-256 numbers on request. What `TarReader` reads, made on purpose, hostile cases included.
public struct TarWriter {
    public enum LongNames: Sendable { case pax, gnu }

    public private(set) var bytes: [UInt8] = []
    public var longNames: LongNames

    public init(longNames: LongNames = .pax) { self.longNames = longNames }

    /// One entry: `type` a ustar typeflag ("0" file, "1" hard link, "2" symlink, "3" char
    /// device, "5" directory, "6" FIFO), `data` the file's bytes.
    public mutating func add(_ name: String, type: Character = "0", data: [UInt8] = [], link: String = "", mode: UInt32 = 0o644,
                             uid: UInt32 = 0, gid: UInt32 = 0, mtime: UInt64 = 1_600_000_000, base256Size: Bool = false) {
        var name = name
        var link = link
        if name.utf8.count > 100 || link.utf8.count > 100 {
            switch longNames {
            case .pax:
                var records: [UInt8] = []
                if name.utf8.count > 100 { records += Self.paxRecord("path", name) }
                if link.utf8.count > 100 { records += Self.paxRecord("linkpath", link) }
                append(header(name: "PaxHeader", type: "x", size: UInt64(records.count), link: "", mode: 0o644, uid: 0, gid: 0, mtime: 0))
                appendData(records)
            case .gnu:
                if name.utf8.count > 100 {
                    append(header(name: "././@LongLink", type: "L", size: UInt64(name.utf8.count + 1), link: "", mode: 0, uid: 0, gid: 0, mtime: 0))
                    appendData(Array(name.utf8) + [0])
                }
                if link.utf8.count > 100 {
                    append(header(name: "././@LongLink", type: "K", size: UInt64(link.utf8.count + 1), link: "", mode: 0, uid: 0, gid: 0, mtime: 0))
                    appendData(Array(link.utf8) + [0])
                }
            }
            name = String(decoding: name.utf8.prefix(100), as: UTF8.self)
            link = String(decoding: link.utf8.prefix(100), as: UTF8.self)
        }
        append(header(name: name, type: type, size: UInt64(data.count), link: link, mode: mode, uid: uid, gid: gid, mtime: mtime,
                      base256Size: base256Size))
        appendData(data)
    }

    /// A raw 512-byte block, as it is (for corrupt headers).
    public mutating func appendBlock(_ block: [UInt8]) { bytes += block }

    /// The two zero blocks that end an archive.
    public mutating func finish() -> [UInt8] {
        bytes += [UInt8](repeating: 0, count: 1024)
        return bytes
    }

    /// A ustar header block with its checksum.
    public func header(name: String, type: Character, size: UInt64, link: String, mode: UInt32, uid: UInt32, gid: UInt32, mtime: UInt64,
                       base256Size: Bool = false) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ text: [UInt8], at offset: Int, width: Int) {
            for (i, byte) in text.prefix(width).enumerated() { block[offset + i] = byte }
        }
        func octal(_ value: UInt64, at offset: Int, width: Int) {
            let digits = String(value, radix: 8)
            put(Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8), at: offset, width: width - 1)
        }
        put(Array(name.utf8), at: 0, width: 100)
        octal(UInt64(mode), at: 100, width: 8)
        octal(UInt64(uid), at: 108, width: 8)
        octal(UInt64(gid), at: 116, width: 8)
        if base256Size {
            block[124] = 0x80
            for i in 0..<8 { block[135 - i] = UInt8(truncatingIfNeeded: size >> (8 * UInt64(i))) }
        } else {
            octal(size, at: 124, width: 12)
        }
        octal(mtime, at: 136, width: 12)
        block[156] = type.asciiValue ?? 0x30
        put(Array(link.utf8), at: 157, width: 100)
        put(Array("ustar\0".utf8), at: 257, width: 6)
        put(Array("00".utf8), at: 263, width: 2)
        for i in 148..<156 { block[i] = 0x20 }
        let sum = block.reduce(0) { $0 + Int($1) }
        octal(UInt64(sum), at: 148, width: 7)
        return block
    }

    private mutating func append(_ block: [UInt8]) { bytes += block }

    private mutating func appendData(_ data: [UInt8]) {
        bytes += data
        bytes += [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }

    /// "LENGTH KEY=VALUE\n", LENGTH counting itself.
    static func paxRecord(_ key: String, _ value: String) -> [UInt8] {
        let body = " \(key)=\(value)\n"
        var length = body.utf8.count + 1
        while String(length).utf8.count + body.utf8.count != length { length += 1 }
        return Array((String(length) + body).utf8)
    }
}
