@testable import ImageLayers
@testable import Images
import Testing

/// The tar reader on archives made here: each header form, and each way a header can be wrong.
@Suite struct TarReaderTests {
    /// Every entry's header and data, or the error the stream ends with.
    static func read(_ bytes: [UInt8], limits: TarLimits = TarLimits()) throws(TarError) -> [(TarEntry, [UInt8])] {
        var reader = TarReader(MemorySource(bytes), limits: limits)
        var out: [(TarEntry, [UInt8])] = []
        while let entry = try reader.next() {
            var data: [UInt8] = []
            while let chunk = try reader.readData(limit: 100) { data += chunk }
            out.append((entry, data))
        }
        return out
    }

    @Test func ustarEntriesOfEachKindAreRead() throws {
        var tar = TarWriter()
        tar.add("a/", type: "5", mode: 0o755, uid: 1000, gid: 100)
        tar.add("a/file", data: Array(repeating: 7, count: 1000), mode: 0o4755, mtime: 1234)
        tar.add("a/link", type: "2", link: "../x")
        tar.add("a/hard", type: "1", link: "a/file")
        tar.add("a/null", type: "3")
        tar.add("a/pipe", type: "6")
        let entries = try Self.read(tar.finish())
        #expect(entries.map(\.0.kind) == [.directory, .file, .symlink, .hardLink, .characterDevice, .fifo])
        #expect(entries[0].0.uid == 1000 && entries[0].0.gid == 100 && entries[0].0.mode == 0o755)
        #expect(entries[1].1 == Array(repeating: 7, count: 1000) && entries[1].0.mode == 0o4755 && entries[1].0.mtime == 1234)
        #expect(entries[2].0.linkTarget == "../x" && entries[3].0.linkTarget == "a/file")
    }

    @Test(arguments: [TarWriter.LongNames.pax, .gnu]) func longNamesAndLinksAreRead(_ style: TarWriter.LongNames) throws {
        let name = String(repeating: "d/", count: 120) + "file"
        let link = String(repeating: "t/", count: 80) + "target"
        var tar = TarWriter(longNames: style)
        tar.add(name, data: [1, 2])
        tar.add("s", type: "2", link: link)
        let entries = try Self.read(tar.finish())
        #expect(entries.map(\.0.path) == [name, "s"])
        #expect(entries[1].0.linkTarget == link)
        #expect(entries[0].1 == [1, 2])
    }

    @Test func base256SizesAreRead() throws {
        var tar = TarWriter()
        tar.add("big", data: Array(repeating: 1, count: 700), base256Size: true)
        let entries = try Self.read(tar.finish())
        #expect(entries[0].0.size == 700 && entries[0].1.count == 700)
        #expect(TarReader<MemorySource>.number([0x80, 0, 0, 0, 0, 0, 0, 1, 0]) == 256)
        #expect(TarReader<MemorySource>.number([0xff, 0xff]) == nil)  // negative
        #expect(TarReader<MemorySource>.number(Array("  0755 \0".utf8)[...]) == 0o755)
        #expect(TarReader<MemorySource>.number(Array("0799\0".utf8)[...]) == nil)
    }

    @Test func aBadChecksumIsRefused() {
        var tar = TarWriter()
        tar.add("x", data: [1])
        var bytes = tar.finish()
        bytes[0] = UInt8(ascii: "y")
        #expect(throws: TarError(entry: "y", offset: 0, .badChecksum)) { try Self.read(bytes) }
    }

    @Test func aBadSizeFieldIsRefused() {
        var block = TarWriter().header(name: "x", type: "0", size: 1, link: "", mode: 0o644, uid: 0, gid: 0, mtime: 0)
        block[124] = UInt8(ascii: "9")
        // Recompute the checksum so that only the size is wrong.
        for i in 148..<156 { block[i] = 0x20 }
        let sum = String(block.reduce(0) { $0 + Int($1) }, radix: 8)
        for (i, c) in (String(repeating: "0", count: 6 - sum.count) + sum).utf8.enumerated() { block[148 + i] = c }
        block[154] = 0
        #expect(throws: TarError(entry: "x", offset: 0, .badNumber(field: "size"))) { try Self.read(block + [UInt8](repeating: 0, count: 1024)) }
    }

    @Test func truncatedStreamsAreRefused() throws {
        var tar = TarWriter()
        tar.add("x", data: Array(repeating: 1, count: 2000))
        let bytes = tar.finish()
        #expect(throws: TarError(entry: "x", offset: 0, .truncated)) { try Self.read(Array(bytes.prefix(1000))) }
        #expect(throws: TarError(entry: "", offset: 0, .truncated)) { try Self.read(Array(bytes.prefix(300))) }
        // The end of the stream on a block boundary ends the archive.
        #expect(try Self.read(Array(bytes.prefix(512 * 5))).count == 1)
    }

    @Test func limitsAreCheckedBeforeReading() {
        var tar = TarWriter()
        for i in 0..<5 { tar.add("f\(i)", data: [1]) }
        let bytes = tar.finish()
        #expect(throws: TarError(entry: "", offset: 512 * 6, .tooManyEntries(3))) { try Self.read(bytes, limits: TarLimits(entries: 3)) }
        var bomb = TarWriter()
        bomb.add("bomb", data: Array(repeating: 0, count: 10_000))
        #expect(throws: TarError(entry: "bomb", offset: 0, .tooManyBytes(4096))) { try Self.read(bomb.finish(), limits: TarLimits(bytes: 4096)) }
        // A size field promising 2^62 bytes is refused from its header, with nothing allocated.
        var huge = TarWriter()
        huge.appendBlock(huge.header(name: "huge", type: "0", size: 1 << 62, link: "", mode: 0, uid: 0, gid: 0, mtime: 0, base256Size: true))
        #expect(throws: TarError(entry: "huge", offset: 0, .tooManyBytes(TarLimits().bytes))) { try Self.read(huge.bytes) }
        var long = TarWriter(longNames: .gnu)
        long.add(String(repeating: "n", count: 5000))
        #expect(throws: TarError(entry: "././@LongLink", offset: 0, .nameTooLong(5001))) { try Self.read(long.finish()) }
    }

    @Test func malformedPAXRecordsAreRefused() {
        var tar = TarWriter()
        tar.appendBlock(tar.header(name: "pax", type: "x", size: 12, link: "", mode: 0, uid: 0, gid: 0, mtime: 0))
        tar.appendBlock(Array("99 path=abc\n".utf8) + [UInt8](repeating: 0, count: 500))
        #expect(throws: TarError.self) { try Self.read(tar.finish()) }
        #expect(throws: TarReader<MemorySource>.RecordError.self) { try TarReader<MemorySource>.parsePAX(Array("5 a\n".utf8)) }
        #expect(try! TarReader<MemorySource>.parsePAX(Array("12 path=abc\n".utf8)) == ["path": "abc"])
    }

    @Test func aNULInAPAXPathIsRefused() {
        var tar = TarWriter()
        let record = TarWriter.paxRecord("path", "a\0b")
        tar.appendBlock(tar.header(name: "pax", type: "x", size: UInt64(record.count), link: "", mode: 0, uid: 0, gid: 0, mtime: 0))
        tar.appendBlock(record + [UInt8](repeating: 0, count: 512 - record.count))
        tar.add("placeholder", data: [])
        #expect(throws: TarError(entry: "a\0b", offset: 1024, .badPath("it holds a NUL byte"))) { try Self.read(tar.finish()) }
    }

    @Test func layerPathsAreNormalisedOrRefused() throws {
        #expect(try LayerPath.normalize("./a//b/./c").components == ["a", "b", "c"])
        #expect(try LayerPath.normalize("/etc/passwd") == (["etc", "passwd"], true))
        #expect(try LayerPath.normalize("./").components == [])
        #expect(throws: LayerPathError("it has a '..' component")) { try LayerPath.normalize("a/../../etc") }
        #expect(throws: LayerPathError.self) { try LayerPath.normalize("a/" + String(repeating: "x", count: 256)) }
        #expect(try LayerPath.role(of: ".wh..wh..opq") == .opaque)
        #expect(try LayerPath.role(of: ".wh.gone") == .whiteout("gone"))
        #expect(throws: LayerPathError.self) { try LayerPath.role(of: ".wh..wh.plnk") }
        #expect(throws: LayerPathError.self) { try LayerPath.role(of: ".wh...") }
    }
}
