/// Why a tar stream (an image layer, or the archive holding the layers) was refused: which
/// entry, at which byte, and what was wrong with it.
public struct TarError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Problem: Equatable, Sendable {
        /// The stream ended inside a header, a PAX record block or an entry's data.
        case truncated
        /// The header's checksum (POSIX.1-2017 pax, "ustar Interchange Format") is not the sum of its bytes.
        case badChecksum
        /// The block is neither a ustar nor a GNU header (no `ustar` magic).
        case notUstar
        /// A numeric field (size, mode, uid, gid, mtime) is neither octal nor base-256, or is out of range.
        case badNumber(field: String)
        /// A GNU long name, a PAX path or linkpath, or a name after them, over the limit in bytes.
        case nameTooLong(Int)
        /// A PAX extended header over the limit in bytes.
        case extendedHeaderTooLong(UInt64)
        /// A PAX record that is not `LENGTH KEY=VALUE\n`, or a value out of range.
        case badExtendedHeader(String)
        case tooManyEntries(Int)
        /// More bytes (headers, data and padding of every entry) than the limit allows.
        case tooManyBytes(UInt64)
        case unsupportedType(UInt8)
        /// A path with a NUL byte, an empty component after normalising, or a `..` component.
        case badPath(String)
        /// A write whose path goes through a symlink (or a non-directory) already in the tree.
        case throughSymlink(String)
        /// A hard link whose target is not a file already extracted in the tree.
        case badHardLink(String)
        /// A `.wh..wh.` name other than the opaque marker (aufs internals).
        case unsupportedWhiteout(String)
        /// What the bytes come from failed: a read error, corrupt gzip data.
        case source(String)
    }

    /// The entry's name as far as it was read ("" before the first name is known).
    public var entry: String
    /// Where the entry's header starts in the (uncompressed) stream.
    public var offset: UInt64
    public var problem: Problem

    public init(entry: String, offset: UInt64, _ problem: Problem) {
        self.entry = entry
        self.offset = offset
        self.problem = problem
    }

    public var description: String {
        let what: String
        switch problem {
        case .truncated: what = "the stream ends inside the entry"
        case .badChecksum: what = "header checksum does not match"
        case .notUstar: what = "not a ustar, GNU or PAX header"
        case .badNumber(let field): what = "its \(field) field is not an octal or base-256 number in range"
        case .nameTooLong(let count): what = "name of \(count) bytes is over the limit"
        case .extendedHeaderTooLong(let count): what = "PAX header of \(count) bytes is over the limit"
        case .badExtendedHeader(let why): what = "PAX header is malformed: \(why)"
        case .tooManyEntries(let limit): what = "more than \(limit) entries (raise --max-entries)"
        case .tooManyBytes(let limit): what = "more than \(limit) bytes uncompressed (raise --max-size)"
        case .unsupportedType(let flag): what = "entry type '\(flag >= 0x20 && flag < 0x7f ? String(UnicodeScalar(flag)) : "\\(flag)")' is not supported"
        case .badPath(let why): what = "path refused: \(why)"
        case .throughSymlink(let component): what = "it would write through \(component), a symlink or non-directory"
        case .badHardLink(let why): what = "hard link refused: \(why)"
        case .unsupportedWhiteout(let name): what = "whiteout \(name) is not an OCI whiteout"
        case .source(let why): what = why
        }
        let name = entry.isEmpty ? "" : " '\(Self.printable(entry))'"
        return "tar entry\(name) at byte \(offset): \(what)"
    }

    /// At most 200 bytes of a name, control bytes escaped, for a one-line message.
    package static func printable(_ name: String) -> String {
        var out = ""
        for scalar in name.unicodeScalars.prefix(200) {
            out += scalar.value < 0x20 || scalar.value == 0x7f ? "\\x" + hexBytes([UInt8(scalar.value)]) : String(scalar)
        }
        return name.unicodeScalars.count > 200 ? out + "..." : out
    }
}

/// What one stream may hold; checked before anything is allocated or read for an entry.
public struct TarLimits: Equatable, Sendable {
    /// Headers of any kind (PAX and GNU long-name headers count too).
    public var entries: Int
    /// Every byte of the stream: headers, data and padding.
    public var bytes: UInt64
    /// A path or link target, PAX or GNU long name included (Linux's PATH_MAX).
    public var nameBytes: Int
    /// One PAX extended header's records.
    public var extendedHeaderBytes: Int

    public init(entries: Int = 1_000_000, bytes: UInt64 = 8 << 30, nameBytes: Int = 4096, extendedHeaderBytes: Int = 1 << 20) {
        self.entries = entries
        self.bytes = bytes
        self.nameBytes = nameBytes
        self.extendedHeaderBytes = extendedHeaderBytes
    }
}

/// One entry's header, PAX and GNU long names applied.
public struct TarEntry: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case file, hardLink, symlink, characterDevice, blockDevice, directory, fifo
    }

    public var path: String
    public var linkTarget: String
    public var kind: Kind
    /// The mode's permission bits, setuid, setgid and sticky included (07777).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    /// Data bytes that follow the header (0 for everything but files).
    public var size: UInt64
    /// Seconds since the epoch, whole.
    public var mtime: Int64
    /// Where the header starts in the stream.
    public var offset: UInt64
}

/// Where a tar reader's bytes come from: a file, a window of one, a decompressor.
public protocol ByteSource {
    /// Up to `buffer.count` bytes into `buffer`; 0 at the end.
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(ImageError) -> Int
}

/// Bytes already in memory (tests and the fuzz target).
public struct MemorySource: ByteSource {
    var bytes: [UInt8]
    var position = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(ImageError) -> Int {
        let count = min(buffer.count, bytes.count - position)
        bytes.withUnsafeBytes { all in buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: all[position..<position + count])) }
        position += count
        return count
    }
}

/// A streaming tar reader (POSIX.1-2017 pax, "ustar Interchange Format" and "pax Extended
/// Header"; GNU tar's `L` and `K` long names): one header at a time, an entry's data in chunks,
/// never the whole stream in memory. Every count is checked against `limits` before it is read.
public struct TarReader<Source: ByteSource> {
    public private(set) var source: Source
    public let limits: TarLimits
    /// Bytes and headers taken from the stream so far.
    public private(set) var consumed: UInt64 = 0
    public private(set) var entries = 0

    private var buffer = [UInt8](repeating: 0, count: 64 << 10)
    private var start = 0
    private var end = 0
    private var sourceEnded = false
    /// The current entry's data left to read, and its padding to the next block.
    private var remaining: UInt64 = 0
    private var padding = 0
    private var current: TarEntry?
    private var globals: [String: String] = [:]
    private var finished = false

    public init(_ source: Source, limits: TarLimits = TarLimits()) {
        self.source = source
        self.limits = limits
    }

    /// The next entry, its data unread (skipped by the next call); nil after the end-of-archive
    /// blocks, or at the end of the stream on a block boundary.
    public mutating func next() throws(TarError) -> TarEntry? {
        if finished { return nil }
        if let entry = current { try skip(remaining + UInt64(padding), entry: entry.path, offset: entry.offset) }
        current = nil
        remaining = 0
        padding = 0
        var local: [String: String] = [:]
        var longName: String?
        var longLink: String?
        while true {
            let offset = consumed
            guard let block = try takeBlock(entry: longName ?? "", offset: offset) else {
                finished = true
                return nil
            }
            if block.allSatisfy({ $0 == 0 }) {
                // Two zero blocks end the archive; a lone one at the end of the stream does too.
                finished = true
                _ = try takeBlock(entry: "", offset: consumed)
                return nil
            }
            entries += 1
            guard entries <= limits.entries else { throw TarError(entry: longName ?? "", offset: offset, .tooManyEntries(limits.entries)) }
            var header = try Self.parseHeader(block, offset: offset)
            let fail = { (problem: TarError.Problem) in TarError(entry: longName ?? header.name, offset: offset, problem) }
            guard header.size <= limits.bytes - min(limits.bytes, consumed) else { throw fail(.tooManyBytes(limits.bytes)) }
            switch header.typeflag {
            case UInt8(ascii: "x"), UInt8(ascii: "g"):
                guard header.size <= UInt64(limits.extendedHeaderBytes) else { throw fail(.extendedHeaderTooLong(header.size)) }
                let records = try takeData(Int(header.size), entry: header.name, offset: offset)
                let parsed: [String: String]
                do { parsed = try Self.parsePAX(records) } catch { throw fail(.badExtendedHeader(error.why)) }
                if header.typeflag == UInt8(ascii: "g") { globals.merge(parsed) { $1 } } else { local.merge(parsed) { $1 } }
                continue
            case UInt8(ascii: "L"), UInt8(ascii: "K"):
                guard header.size <= UInt64(limits.nameBytes) + 1 else { throw fail(.nameTooLong(Int(clamping: header.size))) }
                let data = try takeData(Int(header.size), entry: header.name, offset: offset)
                let name = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
                if header.typeflag == UInt8(ascii: "L") { longName = name } else { longLink = name }
                continue
            default:
                break
            }
            let values = globals.merging(local) { $1 }
            if let path = values["path"] { header.name = path } else if let longName { header.name = longName }
            if let link = values["linkpath"] { header.linkname = link } else if let longLink { header.linkname = longLink }
            for (key, field) in [("size", "size"), ("uid", "uid"), ("gid", "gid"), ("mtime", "mtime")] {
                guard let text = values[key] else { continue }
                // mtime may have a fraction ("1686355200.5"): whole seconds are kept.
                let whole = key == "mtime" ? String(text.prefix { $0 != "." }) : text
                guard let value = Self.decimal(whole) else { throw fail(.badExtendedHeader("\(key) '\(TarError.printable(text))' is not a number")) }
                switch key {
                case "size": header.size = value
                case "uid", "gid":
                    guard value <= UInt64(UInt32.max) else { throw fail(.badNumber(field: field)) }
                    if key == "uid" { header.uid = value } else { header.gid = value }
                default: header.mtime = Int64(clamping: value)
                }
            }
            let name = header.name
            guard name.utf8.count <= limits.nameBytes else { throw fail(.nameTooLong(name.utf8.count)) }
            guard header.linkname.utf8.count <= limits.nameBytes else { throw fail(.nameTooLong(header.linkname.utf8.count)) }
            guard !name.utf8.contains(0), !header.linkname.utf8.contains(0) else { throw fail(.badPath("it holds a NUL byte")) }
            let kind: TarEntry.Kind
            switch header.typeflag {
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): kind = name.hasSuffix("/") ? .directory : .file
            case UInt8(ascii: "1"): kind = .hardLink
            case UInt8(ascii: "2"): kind = .symlink
            case UInt8(ascii: "3"): kind = .characterDevice
            case UInt8(ascii: "4"): kind = .blockDevice
            case UInt8(ascii: "5"): kind = .directory
            case UInt8(ascii: "6"): kind = .fifo
            default: throw fail(.unsupportedType(header.typeflag))
            }
            // Only a file's size is data; others' sizes (a hard link's, in some writers) are not
            // followed by data blocks (pax: "the size field ... shall be ignored" for links and directories).
            let size = kind == .file ? header.size : 0
            guard size <= limits.bytes - min(limits.bytes, consumed) else { throw fail(.tooManyBytes(limits.bytes)) }
            let entry = TarEntry(path: name, linkTarget: header.linkname, kind: kind, mode: UInt32(header.mode & 0o7777),
                                 uid: UInt32(header.uid), gid: UInt32(header.gid), size: size, mtime: header.mtime, offset: offset)
            current = entry
            remaining = size
            padding = Int((512 - size % 512) % 512)
            return entry
        }
    }

    /// The next chunk of the current entry's data, at most `limit` bytes; nil once all is read.
    public mutating func readData(limit: Int = 64 << 10) throws(TarError) -> ArraySlice<UInt8>? {
        guard let entry = current, remaining > 0 else { return nil }
        if start == end { try fill(entry: entry.path, offset: entry.offset) }
        guard start < end else { throw TarError(entry: entry.path, offset: entry.offset, .truncated) }
        let count = Int(min(UInt64(min(limit, end - start)), remaining))
        let chunk = buffer[start..<start + count]
        start += count
        consumed += UInt64(count)
        remaining -= UInt64(count)
        return chunk
    }

    /// Reads what is left of the source after the archive's end (a compressed layer's trailer,
    /// padding) so that a digest over the whole stream can be checked; at most `limit` bytes.
    public mutating func drain(limit: UInt64) throws(TarError) {
        while true {
            start = end
            try fill(entry: "", offset: consumed)
            if start == end { return }
            consumed += UInt64(end - start)
            guard consumed <= limit else { throw TarError(entry: "", offset: consumed, .tooManyBytes(limit)) }
        }
    }

    // MARK: Blocks

    private mutating func fill(entry: String, offset: UInt64) throws(TarError) {
        if start == end { start = 0; end = 0 }
        if start > 0 && end == buffer.count {
            buffer.replaceSubrange(0..<end - start, with: buffer[start..<end])
            end -= start
            start = 0
        }
        guard !sourceEnded, end < buffer.count else { return }
        let count: Int
        do { count = try source.read(into: &buffer, at: end) } catch { throw TarError(entry: entry, offset: offset, .source(error.message)) }
        if count == 0 { sourceEnded = true }
        end += count
    }

    /// Exactly `count` bytes, or fewer only at the end of the stream.
    private mutating func take(_ count: Int, entry: String, offset: UInt64) throws(TarError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            if start == end { try fill(entry: entry, offset: offset) }
            if start == end { break }
            let n = min(count - out.count, end - start)
            out += buffer[start..<start + n]
            start += n
        }
        consumed += UInt64(out.count)
        guard consumed <= limits.bytes else { throw TarError(entry: entry, offset: offset, .tooManyBytes(limits.bytes)) }
        return out
    }

    /// One 512-byte block; nil at the end of the stream exactly on a block boundary.
    private mutating func takeBlock(entry: String, offset: UInt64) throws(TarError) -> [UInt8]? {
        let block = try take(512, entry: entry, offset: offset)
        if block.isEmpty { return nil }
        guard block.count == 512 else { throw TarError(entry: entry, offset: offset, .truncated) }
        return block
    }

    /// An extended header's or long name's data, and its padding.
    private mutating func takeData(_ count: Int, entry: String, offset: UInt64) throws(TarError) -> [UInt8] {
        let padded = (count + 511) / 512 * 512
        let data = try take(padded, entry: entry, offset: offset)
        guard data.count == padded else { throw TarError(entry: entry, offset: offset, .truncated) }
        return Array(data.prefix(count))
    }

    private mutating func skip(_ count: UInt64, entry: String, offset: UInt64) throws(TarError) {
        var left = count
        while left > 0 {
            if start == end { try fill(entry: entry, offset: offset) }
            guard start < end else { throw TarError(entry: entry, offset: offset, .truncated) }
            let n = Int(min(UInt64(end - start), left))
            start += n
            left -= UInt64(n)
            consumed += UInt64(n)
        }
    }

    // MARK: Headers (pure)

    struct Header {
        var name: String
        var mode: UInt64
        var uid: UInt64
        var gid: UInt64
        var size: UInt64
        var mtime: Int64
        var typeflag: UInt8
        var linkname: String
    }

    /// A 512-byte ustar or GNU header: checksum, magic and every number checked.
    static func parseHeader(_ block: [UInt8], offset: UInt64) throws(TarError) -> Header {
        precondition(block.count == 512)
        func string(_ range: Range<Int>) -> String { String(decoding: block[range].prefix { $0 != 0 }, as: UTF8.self) }
        let name = string(0..<100)
        func fail(_ problem: TarError.Problem) -> TarError { TarError(entry: name, offset: offset, problem) }
        // The checksum is the sum of the header's bytes with its own field as spaces; some old
        // writers summed signed bytes, which readers accept too.
        guard let stored = number(block[148..<156]) else { throw fail(.badChecksum) }
        var unsigned: Int64 = 0
        var signed: Int64 = 0
        for (index, byte) in block.enumerated() {
            let value = (148..<156).contains(index) ? 0x20 : byte
            unsigned += Int64(value)
            signed += Int64(Int8(bitPattern: value))
        }
        guard Int64(stored) == unsigned || Int64(stored) == signed else { throw fail(.badChecksum) }
        let magic = Array(block[257..<263])
        let posix = magic == Array("ustar\0".utf8)
        guard posix || magic == Array("ustar ".utf8) else { throw fail(.notUstar) }
        var header = Header(name: name, mode: 0, uid: 0, gid: 0, size: 0, mtime: 0, typeflag: block[156], linkname: string(157..<257))
        // ustar's prefix field (345..<500); GNU headers keep other fields there.
        if posix, block[345] != 0 { header.name = string(345..<500) + "/" + name }
        for (field, range) in [("mode", 100..<108), ("uid", 108..<116), ("gid", 116..<124), ("size", 124..<136), ("mtime", 136..<148)] {
            guard let value = number(block[range]) else { throw fail(.badNumber(field: field)) }
            switch field {
            case "mode": header.mode = value
            case "uid": header.uid = value
            case "gid": header.gid = value
            case "size": header.size = value
            default: header.mtime = Int64(clamping: value)
            }
        }
        guard header.uid <= UInt64(UInt32.max) else { throw fail(.badNumber(field: "uid")) }
        guard header.gid <= UInt64(UInt32.max) else { throw fail(.badNumber(field: "gid")) }
        guard header.size <= UInt64(Int64.max) else { throw fail(.badNumber(field: "size")) }
        return header
    }

    /// An octal field (leading spaces, ending at a NUL or space), or GNU's base-256 (the first
    /// byte's high bit set, the rest big-endian; negative values refused). nil when neither.
    static func number(_ field: ArraySlice<UInt8>) -> UInt64? {
        guard let first = field.first else { return nil }
        if first & 0x80 != 0 {
            guard first & 0x40 == 0 else { return nil }
            var value = UInt64(first & 0x3f)
            for byte in field.dropFirst() {
                guard value <= UInt64.max >> 8 else { return nil }
                value = value << 8 | UInt64(byte)
            }
            return value
        }
        var index = field.startIndex
        while index < field.endIndex && field[index] == 0x20 { index += 1 }
        var value: UInt64 = 0
        while index < field.endIndex, (0x30...0x37).contains(field[index]) {
            guard value <= UInt64.max >> 3 else { return nil }
            value = value << 3 | UInt64(field[index] - 0x30)
            index += 1
        }
        // After the digits, only NULs and spaces.
        guard field[index...].allSatisfy({ $0 == 0 || $0 == 0x20 }) else { return nil }
        return value
    }

    struct RecordError: Error { var why: String }

    /// PAX records: "LENGTH KEY=VALUE\n", LENGTH counting the whole record in decimal.
    static func parsePAX(_ data: [UInt8]) throws(RecordError) -> [String: String] {
        var values: [String: String] = [:]
        var index = 0
        while index < data.count {
            // Trailing NULs pad some writers' records.
            if data[index...].allSatisfy({ $0 == 0 }) { break }
            guard let space = data[index...].prefix(20).firstIndex(of: 0x20) else { throw RecordError(why: "a record has no length") }
            guard let length = decimal(String(decoding: data[index..<space], as: UTF8.self)), length > 0,
                  UInt64(data.count - index) >= length else {
                throw RecordError(why: "a record's length is not a number within the header")
            }
            let record = data[index..<index + Int(length)]
            guard record.last == 0x0a, let equals = record[(space + 1)...].firstIndex(of: UInt8(ascii: "=")) else {
                throw RecordError(why: "a record is not KEY=VALUE and a newline")
            }
            let key = String(decoding: data[(space + 1)..<equals], as: UTF8.self)
            guard !key.isEmpty else { throw RecordError(why: "a record has an empty key") }
            values[key] = String(decoding: data[(equals + 1)..<(record.endIndex - 1)], as: UTF8.self)
            index += Int(length)
        }
        return values
    }

    /// Decimal digits only, no sign, at most 19 of them.
    static func decimal(_ text: String) -> UInt64? {
        guard !text.isEmpty, text.utf8.count <= 19, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return UInt64(text)
    }
}
