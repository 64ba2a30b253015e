/// PEP 503's HTML project page ("Base HTML API", https://peps.python.org/pep-0503/): every `<a>`
/// element is a file, its text the filename (which must be the URL's last path segment), its
/// href the URL with `#name=hash`, and its `data-requires-python`, `data-yanked` (PEP 592) and
/// `data-core-metadata` / `data-dist-info-metadata` (PEP 658, 714) attributes. Read by a small
/// tokenizer of tags, attributes (quoted or not), comments and character references, enough
/// for these pages; a `<base href>` sets the base URL, as HTML says.
extension SimpleIndex {
    public static func projectPage(html bytes: [UInt8], url pageURL: String) throws(PackageIndexError) -> ProjectPage {
        try checkSize(bytes)
        var base = try SimpleIndex.base(pageURL)
        var sawBase = false
        var files: [DistributionFile] = []
        // The <a> being read, and where its text starts; one pass, whatever the page holds.
        var anchor: (tag: HTML.Tag, textStart: Int)?
        var index = 0
        while let lessThan = bytes[index...].firstIndex(of: UInt8(ascii: "<")) {
            index = lessThan
            if bytes[index...].starts(with: "<!--".utf8) {
                index = HTML.find(Array("-->".utf8), in: bytes, from: index + 4).map { $0 + 3 } ?? bytes.count
                continue
            }
            let next = index + 1 < bytes.count ? bytes[index + 1] : 0
            if next == UInt8(ascii: "/") || next == UInt8(ascii: "!") || next == UInt8(ascii: "?") {
                if let reading = anchor, HTML.isEndTag("a", in: bytes, at: index) {
                    anchor = nil
                    let text = ASCII.trimmed(HTML.decode(HTML.withoutTags(bytes[reading.textStart..<index])))
                    if let href = reading.tag.attribute("href") {
                        guard files.count < maximumFiles else { throw PackageIndexError(.simpleIndex, "more than \(maximumFiles) files") }
                        files.append(try file(text, href: href, tag: reading.tag, base: base))
                    }
                }
                index = (bytes[index...].firstIndex(of: UInt8(ascii: ">")) ?? bytes.count - 1) + 1
                continue
            }
            guard ASCII.isLetter(next) else {
                index += 1
                continue
            }
            let tag = try HTML.tag(bytes, at: index)
            index = tag.end
            if tag.name == "base", !sawBase, let href = tag.attribute("href") {
                sawBase = true
                let resolved = URLReference(ASCII.trimmed(HTML.decode(href))).resolved(against: base)
                guard resolved.isHTTP else { throw PackageIndexError(.simpleIndex, "the <base href> is not an http(s) URL") }
                base = resolved
            }
            if tag.name == "a" {
                guard anchor == nil else { throw PackageIndexError(.simpleIndex, "an <a> element inside another") }
                anchor = (tag, tag.end)
            }
        }
        guard anchor == nil else { throw PackageIndexError(.simpleIndex, "an <a> element is not closed") }
        return ProjectPage(name: nil, files: files)
    }

    static func file(_ filename: String, href: ArraySlice<UInt8>, tag: HTML.Tag, base: URLReference) throws(PackageIndexError) -> DistributionFile {
        try checkFilename(filename)
        guard href.count <= maximumHrefBytes else {
            throw PackageIndexError(.simpleIndex, "the href of \(ASCII.quote(filename)) is longer than \(maximumHrefBytes) bytes")
        }
        let (url, fragment) = try resolve(ASCII.trimmed(HTML.decode(href)), against: base, file: filename)
        guard let last = lastPathSegment(url), ASCII.same(last, filename) else {
            throw PackageIndexError(.simpleIndex, "the text \(ASCII.quote(filename)) is not the last segment of its URL \(ASCII.quote(url))")
        }
        var coreMetadata: [String: String]?
        // PEP 714: data-core-metadata, and the older name where it is absent.
        if let value = tag.attribute("data-core-metadata") ?? tag.attribute("data-dist-info-metadata") {
            let text = HTML.decode(value)
            if ASCII.same(text, "true") {
                coreMetadata = [:]
            } else if text.utf8.contains(UInt8(ascii: "=")) {
                coreMetadata = try fragmentHash(text, file: filename)
            }
        }
        let yanked = tag.attribute("data-yanked").map { HTML.decode($0) }
        return DistributionFile(
            filename: filename, url: url, hashes: try fragmentHash(fragment, file: filename),
            requiresPython: tag.attribute("data-requires-python").map { HTML.decode($0) }, isYanked: yanked != nil,
            yankedReason: yanked.flatMap { $0.isEmpty ? nil : $0 }, coreMetadata: coreMetadata)
    }
}

/// The few pieces of HTML (WHATWG HTML, "Tokenization") these pages need.
enum HTML {
    struct Tag {
        let name: String
        let attributes: [(name: String, value: ArraySlice<UInt8>)]
        /// Just past the tag's `>`.
        let end: Int

        /// The first attribute of that name (later duplicates are ignored, as HTML does).
        func attribute(_ name: String) -> ArraySlice<UInt8>? { attributes.first { $0.name == name }?.value }
    }

    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0C || byte == 0x0D }

    /// A start tag at `start` (its `<`): the name and attributes, lowercase names.
    static func tag(_ bytes: [UInt8], at start: Int) throws(PackageIndexError) -> Tag {
        var index = start + 1
        let nameStart = index
        while index < bytes.count, !isSpace(bytes[index]), bytes[index] != UInt8(ascii: ">"), bytes[index] != UInt8(ascii: "/") { index += 1 }
        let name = String(decoding: bytes[nameStart..<index].map(ASCII.lower), as: UTF8.self)
        var attributes: [(name: String, value: ArraySlice<UInt8>)] = []
        while true {
            while index < bytes.count, isSpace(bytes[index]) || bytes[index] == UInt8(ascii: "/") { index += 1 }
            guard index < bytes.count else { throw PackageIndexError(.simpleIndex, "the tag <\(name) is not closed") }
            if bytes[index] == UInt8(ascii: ">") { return Tag(name: name, attributes: attributes, end: index + 1) }
            let attributeStart = index
            while index < bytes.count, !isSpace(bytes[index]), bytes[index] != UInt8(ascii: ">"), bytes[index] != UInt8(ascii: "/"),
                  index == attributeStart || bytes[index] != UInt8(ascii: "=") {
                index += 1
            }
            let attributeName = String(decoding: bytes[attributeStart..<index].map(ASCII.lower), as: UTF8.self)
            while index < bytes.count, isSpace(bytes[index]) { index += 1 }
            var value: ArraySlice<UInt8> = []
            if index < bytes.count, bytes[index] == UInt8(ascii: "=") {
                index += 1
                while index < bytes.count, isSpace(bytes[index]) { index += 1 }
                if index < bytes.count, bytes[index] == 0x22 || bytes[index] == 0x27 {
                    let quote = bytes[index]
                    guard let closing = bytes[(index + 1)...].firstIndex(of: quote) else {
                        throw PackageIndexError(.simpleIndex, "a value of the attribute \(attributeName) is not closed")
                    }
                    value = bytes[(index + 1)..<closing]
                    index = closing + 1
                } else {
                    let valueStart = index
                    while index < bytes.count, !isSpace(bytes[index]), bytes[index] != UInt8(ascii: ">") { index += 1 }
                    value = bytes[valueStart..<index]
                }
            }
            guard attributes.count < SimpleIndex.maximumAttributes else {
                throw PackageIndexError(.simpleIndex, "a <\(name)> tag with more than \(SimpleIndex.maximumAttributes) attributes")
            }
            attributes.append((attributeName, value))
        }
    }

    /// Whether `</name` (any case, then a space, `/`, `>` or the end) is at `index`.
    static func isEndTag(_ name: String, in bytes: [UInt8], at index: Int) -> Bool {
        let pattern = Array("</\(name)".utf8)
        let after = index + pattern.count
        guard after <= bytes.count, bytes[index..<after].map(ASCII.lower) == pattern else { return false }
        return after == bytes.count || isSpace(bytes[after]) || bytes[after] == UInt8(ascii: ">") || bytes[after] == UInt8(ascii: "/")
    }

    static func find(_ pattern: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        var index = start
        while let found = bytes[index...].firstIndex(of: pattern[0]) {
            if bytes[found...].starts(with: pattern) { return found }
            index = found + 1
        }
        return nil
    }

    /// Text with any tags inside it left out.
    static func withoutTags(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        var inTag = false
        for byte in bytes {
            if byte == UInt8(ascii: "<") { inTag = true } else if byte == UInt8(ascii: ">") && inTag { inTag = false } else if !inTag { out.append(byte) }
        }
        return out
    }

    /// Character references: &lt; &gt; &amp; &quot; &apos; &#39; and other decimal &#NN; and hex
    /// &#xNN; ones; an unknown name stays as written, a number that names no character becomes
    /// U+FFFD ("Character references").
    static func decode(_ bytes: some Collection<UInt8>) -> String {
        let bytes = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            guard bytes[index] == UInt8(ascii: "&"),
                  let semicolon = bytes[index...].prefix(12).firstIndex(of: UInt8(ascii: ";")) else {
                out.append(bytes[index])
                index += 1
                continue
            }
            let name = bytes[(index + 1)..<semicolon]
            var replacement: [UInt8]?
            switch String(decoding: name, as: UTF8.self) {
            case "lt": replacement = [UInt8(ascii: "<")]
            case "gt": replacement = [UInt8(ascii: ">")]
            case "amp": replacement = [UInt8(ascii: "&")]
            case "quot": replacement = [0x22]
            case "apos": replacement = [0x27]
            default:
                if name.first == UInt8(ascii: "#") {
                    let digits = name.dropFirst()
                    var value: UInt32?
                    if digits.first == UInt8(ascii: "x") || digits.first == UInt8(ascii: "X") {
                        let hex = digits.dropFirst()
                        if !hex.isEmpty, hex.count <= 6, hex.allSatisfy(ASCII.isHexDigit) {
                            value = hex.reduce(UInt32(0)) { $0 << 4 | UInt32(SimpleIndex.hexValue($1)) }
                        }
                    } else if !digits.isEmpty, digits.count <= 7, let number = ASCII.number(digits) {
                        value = UInt32(number)
                    }
                    if let value {
                        let scalar = value == 0 ? nil : Unicode.Scalar(value)
                        replacement = Array(String(Character(scalar ?? "\u{FFFD}")).utf8)
                    }
                }
            }
            if let replacement {
                out += replacement
                index = semicolon + 1
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
