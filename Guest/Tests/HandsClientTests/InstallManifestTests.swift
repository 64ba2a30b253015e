import Doors
import Testing

/// The manifest of an `install` reply, checked line by line before anything is fetched: each
/// malformed case is refused with what was wrong and where. The same cases are in
/// python/testdata/frames.json, so the Python client refuses them with the same words.
@Suite struct InstallManifestTests {
    static let sha = String(repeating: "ab", count: 32)
    static let pefile = "pefile\t2024.8.26\tpefile-2024.8.26-py3-none-any.whl\t74\t\(sha)"

    static func line(name: String = "pefile", version: String = "2024.8.26", filename: String = "pefile-2024.8.26-py3-none-any.whl",
                     size: String = "74", sha256: String = sha) -> String {
        [name, version, filename, size, sha256].joined(separator: "\t")
    }

    /// Fields, and the error they give (nil: a manifest).
    static let cases: [(fields: [String], error: String?)] = [
        (["3f2a-01", pefile], nil),
        (["i", line(name: "yara-python", version: "4.5.1", filename: "yara_python-4.5.1-cp311-cp311-manylinux_2_17_x86_64.whl",
                    size: "0"), line(version: "1!2.0rc1.post2+local_1", size: "1099511627776")], nil),
        ([], "no install id"),
        (["a b", pefile], "install id \"a b\" is not 1 to 64 letters, digits or -"),
        ([String(repeating: "a", count: 65), pefile], "install id \"\(String(repeating: "a", count: 64))...\" is not 1 to 64 letters, digits or -"),
        (["", pefile], "install id \"\" is not 1 to 64 letters, digits or -"),
        (["i"], "no files"),
        (["i", "pefile\t2024.8.26\tpefile-2024.8.26-py3-none-any.whl\t74"], "line 1: 4 fields, not 5 (NAME, VERSION, FILENAME, SIZE, SHA256)"),
        (["i", pefile, "pefile 2024.8.26"], "line 2: 1 fields, not 5 (NAME, VERSION, FILENAME, SIZE, SHA256)"),
        (["i", pefile + "\t"], "line 1: 6 fields, not 5 (NAME, VERSION, FILENAME, SIZE, SHA256)"),
        (["i", line(name: "PeFile")], "line 1: NAME \"PeFile\" is not a normalised project name"),
        (["i", line(name: "pe_file")], "line 1: NAME \"pe_file\" is not a normalised project name"),
        (["i", line(name: "pe--file")], "line 1: NAME \"pe--file\" is not a normalised project name"),
        (["i", line(name: "-pefile")], "line 1: NAME \"-pefile\" is not a normalised project name"),
        (["i", line(name: "")], "line 1: NAME \"\" is not a normalised project name"),
        (["i", line(name: "pe\nfile")], "line 1: NAME \"pe\\x0afile\" is not a normalised project name"),
        (["i", line(version: "1.0 --index-url=http://x")], "line 1: VERSION \"1.0 --index-url=http://x\" is not a version"),
        (["i", line(version: ".1")], "line 1: VERSION \".1\" is not a version"),
        (["i", line(version: "")], "line 1: VERSION \"\" is not a version"),
        (["i", line(filename: "../pefile.whl")], "line 1: FILENAME \"../pefile.whl\" is not a plain .whl file name of at most 255 bytes"),
        (["i", line(filename: "a/b.whl")], "line 1: FILENAME \"a/b.whl\" is not a plain .whl file name of at most 255 bytes"),
        (["i", line(filename: "..")], "line 1: FILENAME \"..\" is not a plain .whl file name of at most 255 bytes"),
        (["i", line(filename: "pefile-2024.8.26.tar.gz")], "line 1: FILENAME \"pefile-2024.8.26.tar.gz\" is not a plain .whl file name of at most 255 bytes"),
        (["i", line(filename: "x\u{0}.whl")], "line 1: FILENAME \"x\\x00.whl\" is not a plain .whl file name of at most 255 bytes"),
        (["i", line(filename: String(repeating: "p", count: 252) + ".whl")],
         "line 1: FILENAME \"\(String(repeating: "p", count: 64))...\" is not a plain .whl file name of at most 255 bytes"),
        (["i", line(size: "-1")], "line 1: SIZE \"-1\" is not a whole number of bytes up to 1099511627776"),
        (["i", line(size: "1e3")], "line 1: SIZE \"1e3\" is not a whole number of bytes up to 1099511627776"),
        (["i", line(size: "074")], "line 1: SIZE \"074\" is not a whole number of bytes up to 1099511627776"),
        (["i", line(size: "")], "line 1: SIZE \"\" is not a whole number of bytes up to 1099511627776"),
        (["i", line(size: "1099511627777")], "line 1: SIZE \"1099511627777\" is not a whole number of bytes up to 1099511627776"),
        (["i", line(size: "99999999999999999999")], "line 1: SIZE \"99999999999999999999\" is not a whole number of bytes up to 1099511627776"),
        (["i", line(sha256: sha.uppercased())], "line 1: SHA256 \"\(sha.uppercased())\" is not 64 lowercase hex digits"),
        (["i", line(sha256: String(sha.dropLast()))], "line 1: SHA256 \"\(sha.dropLast())\" is not 64 lowercase hex digits"),
        (["i", line(sha256: String(repeating: "g", count: 64))], "line 1: SHA256 \"\(String(repeating: "g", count: 64))\" is not 64 lowercase hex digits"),
        (["i", pefile, line(name: "pefile2")], "line 2: FILENAME \"pefile-2024.8.26-py3-none-any.whl\" is on line 1 too"),
        (["i", pefile, line(version: "2024.9", filename: "pefile-2024.9-py3-none-any.whl")], "line 2: NAME \"pefile\" is on line 1 too"),
    ]

    @Test func eachMalformedManifestIsRefusedNamingWhatIsWrong() {
        for (fields, expected) in Self.cases {
            do {
                let manifest = try InstallManifest(fields: fields)
                #expect(expected == nil, "\(fields) gave \(manifest), not \(expected ?? "")")
                #expect(manifest.fields == fields)
            } catch {
                #expect(error.description == expected, "\(fields)")
            }
        }
    }

    @Test func aManifestReadsAsItsLinesSay() throws {
        let manifest = try InstallManifest(fields: Self.cases[1].fields)
        #expect(manifest.id == "i")
        #expect(manifest.files == [
            InstallManifest.File(name: "yara-python", version: "4.5.1", filename: "yara_python-4.5.1-cp311-cp311-manylinux_2_17_x86_64.whl",
                                 size: 0, sha256: Self.sha),
            InstallManifest.File(name: "pefile", version: "1!2.0rc1.post2+local_1", filename: "pefile-2024.8.26-py3-none-any.whl",
                                 size: 1 << 40, sha256: Self.sha),
        ])
        #expect(manifest.files[0].requirement == "yara-python==4.5.1 --hash=sha256:\(Self.sha)")
    }

    @Test func atMost1024Files() throws {
        let lines = (0..<1025).map { Self.line(name: "p\($0)", filename: "p\($0)-1-py3-none-any.whl") }
        #expect(try InstallManifest(fields: ["i"] + lines.dropLast()).files.count == 1024)
        #expect(throws: InstallManifestError("1025 files, at most 1024")) { try InstallManifest(fields: ["i"] + lines) }
    }
}
