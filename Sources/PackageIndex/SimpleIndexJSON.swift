/// PEP 691's JSON project page ("JSON Serialization", https://peps.python.org/pep-0691/; the
/// living simple repository API): `meta.api-version` of major version 1, `name`, and `files`,
/// each with `filename`, `url` (resolved against the page's URL), `hashes`, `requires-python`,
/// `yanked` (a boolean or a reason) and `core-metadata` (PEP 714; `dist-info-metadata` and
/// `data-dist-info-metadata` where it is absent). Members this reader reads may appear once.
extension SimpleIndex {
    public static func projectPage(json bytes: [UInt8], url pageURL: String) throws(PackageIndexError) -> ProjectPage {
        try checkSize(bytes)
        let base = try SimpleIndex.base(pageURL)
        var reader = JSONReader(bytes)
        var name: String?
        var apiVersion: String?
        var files: [DistributionFile] = []
        var seen: Set<String> = []
        try reader.beginObject()
        var first = true
        while let key = try reader.member(&first) {
            switch try JSONPage.known(key, ["meta", "name", "files"], &seen) ?? "" {
            case "meta": apiVersion = try JSONPage.meta(&reader)
            case "name": name = try JSONPage.string(&reader, "name")
            case "files":
                guard try reader.kind() == .array else { throw PackageIndexError(.simpleIndex, "\"files\" is not an array") }
                try reader.beginArray()
                var firstFile = true
                while try reader.element(&firstFile) {
                    guard files.count < maximumFiles else { throw PackageIndexError(.simpleIndex, "more than \(maximumFiles) files") }
                    files.append(try JSONPage.file(&reader, base: base, number: files.count))
                }
            default: try reader.skip()
            }
        }
        try reader.end()
        guard let apiVersion else { throw PackageIndexError(.simpleIndex, "no meta.api-version") }
        let major = apiVersion.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).first.flatMap { ASCII.number($0) }
        guard major == 1 else {
            throw PackageIndexError(.simpleIndex, "api-version \(ASCII.quote(apiVersion)) is not 1.x (PEP 691: a new major version is not read)")
        }
        return ProjectPage(name: name, files: files)
    }
}

/// The members of a PEP 691 page, read one by one.
enum JSONPage {
    /// The key when it is one of `names` (compared byte for byte), nil for keys this reader
    /// skips; a key read twice in one object is an error (two readers could take different ones).
    static func known(_ key: String, _ names: [String], _ seen: inout Set<String>) throws(PackageIndexError) -> String? {
        guard let name = names.first(where: { ASCII.same($0, key) }) else { return nil }
        guard seen.insert(name).inserted else { throw PackageIndexError(.simpleIndex, "the member \(ASCII.quote(name)) appears more than once") }
        return name
    }

    static func string(_ reader: inout JSONReader, _ what: String) throws(PackageIndexError) -> String {
        guard try reader.kind() == .string else { throw PackageIndexError(.simpleIndex, "\"\(what)\" is not a string") }
        return try reader.string()
    }

    /// `meta`: its `api-version`.
    static func meta(_ reader: inout JSONReader) throws(PackageIndexError) -> String? {
        guard try reader.kind() == .object else { throw PackageIndexError(.simpleIndex, "\"meta\" is not an object") }
        try reader.beginObject()
        var version: String?
        var seen: Set<String> = []
        var first = true
        while let key = try reader.member(&first) {
            if try known(key, ["api-version"], &seen) != nil { version = try string(&reader, "meta.api-version") } else { try reader.skip() }
        }
        return version
    }

    /// `{"name": "hex", ...}`, each checked as `SimpleIndex.hash` checks it.
    static func hashes(_ reader: inout JSONReader, _ what: String, file: String) throws(PackageIndexError) -> [String: String] {
        guard try reader.kind() == .object else { throw PackageIndexError(.simpleIndex, "\(what) of \(ASCII.quote(file)) is not an object") }
        try reader.beginObject()
        var hashes: [String: String] = [:]
        var first = true
        while let name = try reader.member(&first) {
            let value = try string(&reader, "\(what).\(name)")
            guard hashes.count < 16 else { throw PackageIndexError(.simpleIndex, "\(what) of \(ASCII.quote(file)) has more than 16 hashes") }
            if let pair = try SimpleIndex.hash(name, value, file: file, strict: true) {
                guard hashes[pair.0] == nil else { throw PackageIndexError(.simpleIndex, "\(what) of \(ASCII.quote(file)) names \(pair.0) twice") }
                hashes[pair.0] = pair.1
            }
        }
        return hashes
    }

    /// One entry of `files`.
    static func file(_ reader: inout JSONReader, base: URLReference, number: Int) throws(PackageIndexError) -> DistributionFile {
        let what = "files[\(number)]"
        guard try reader.kind() == .object else { throw PackageIndexError(.simpleIndex, "\(what) is not an object") }
        try reader.beginObject()
        var filename: String?, url: String?, hashes: [String: String]?, requiresPython: String?
        var yanked = false
        var yankedReason: String?
        var coreMetadata: [String: String]??
        var olderMetadata: [String: String]??
        var seen: Set<String> = []
        let names = ["filename", "url", "hashes", "requires-python", "yanked", "core-metadata", "dist-info-metadata", "data-dist-info-metadata"]
        var first = true
        while let key = try reader.member(&first) {
            let name = try known(key, names, &seen)
            let file = filename ?? what
            switch name ?? "" {
            case "filename": filename = try string(&reader, "\(what).filename")
            case "url": url = try string(&reader, "\(what).url")
            case "hashes": hashes = try self.hashes(&reader, "hashes", file: file)
            case "requires-python":
                if !reader.null() { requiresPython = try string(&reader, "\(what).requires-python") }
            case "yanked":
                switch try reader.kind() {
                case .bool: yanked = try reader.bool()
                case .string:
                    yanked = true
                    let reason = try reader.string()
                    yankedReason = reason.isEmpty ? nil : reason
                default: throw PackageIndexError(.simpleIndex, "\(what).yanked is neither a boolean nor a string")
                }
            case "core-metadata", "dist-info-metadata", "data-dist-info-metadata":
                let served: [String: String]?
                switch try reader.kind() {
                case .bool: served = try reader.bool() ? [:] : nil
                case .object: served = try self.hashes(&reader, name ?? "", file: file)
                default: throw PackageIndexError(.simpleIndex, "\(what).\(name ?? "") is neither a boolean nor an object")
                }
                if name == "core-metadata" { coreMetadata = .some(served) } else if olderMetadata == nil { olderMetadata = .some(served) }
            default:
                try reader.skip()
            }
        }
        guard let filename else { throw PackageIndexError(.simpleIndex, "\(what) has no filename") }
        guard let url else { throw PackageIndexError(.simpleIndex, "\(what) (\(ASCII.quote(filename))) has no url") }
        guard let hashes else { throw PackageIndexError(.simpleIndex, "\(what) (\(ASCII.quote(filename))) has no hashes") }
        try SimpleIndex.checkFilename(filename)
        let resolved = try SimpleIndex.resolve(url, against: base, file: filename)
        let metadata: [String: String]?
        if let served = coreMetadata { metadata = served } else if let served = olderMetadata { metadata = served } else { metadata = nil }
        return DistributionFile(
            filename: filename, url: resolved.url, hashes: hashes, requiresPython: requiresPython, isYanked: yanked,
            yankedReason: yankedReason, coreMetadata: metadata)
    }
}
