import PackageIndex
import Testing

/// A wheel's METADATA: the fields the resolver reads, the header's folding and line ends, refusals and bounds.
@Suite struct CoreMetadataTests {
    /// requests 2.31.0's METADATA, its description cut short.
    static let requests = """
        Metadata-Version: 2.1
        Name: requests
        Version: 2.31.0
        Summary: Python HTTP for Humans.
        Home-page: https://requests.readthedocs.io
        Requires-Python: >=3.7
        Classifier: Programming Language :: Python :: 3.11
        Requires-Dist: charset-normalizer (<4,>=2)
        Requires-Dist: idna (<4,>=2.5)
        Requires-Dist: urllib3 (<3,>=1.21.1)
        Requires-Dist: certifi (>=2017.4.17)
        Provides-Extra: security
        Provides-Extra: socks
        Requires-Dist: PySocks (!=1.5.7,>=1.5.6) ; extra == 'socks'
        Provides-Extra: use_chardet_on_py3
        Requires-Dist: chardet (<6,>=3.0.2) ; extra == 'use_chardet_on_py3'

        # Requests
        Name: not-a-field
        Requires-Dist: nor-this

        """

    @Test func requestsMetadata() throws {
        let metadata = try CoreMetadata(parsing: Self.requests)
        #expect(metadata.metadataVersion == "2.1" && metadata.name == "requests" && metadata.version.description == "2.31.0")
        #expect(metadata.requiresPython?.description == ">=3.7")
        #expect(metadata.requiresDist.map(\.name) == ["charset-normalizer", "idna", "urllib3", "certifi", "PySocks", "chardet"])
        #expect(metadata.requiresDist[0].specifiers.description == "<4,>=2")
        #expect(metadata.providesExtra == ["security", "socks", "use_chardet_on_py3"])
        let needed = try metadata.requiresDist.filter { try $0.applies(in: .debian12CPython311) }.map(\.normalizedName)
        #expect(needed == ["charset-normalizer", "idna", "urllib3", "certifi"])
        #expect(try metadata.requiresDist.filter { try $0.applies(in: .debian12CPython311, extras: ["socks"]) }.count == 5)
    }

    @Test func foldingLineEndsAndCase() throws {
        let folded = "metadata-version: 2.3\r\nNAME: Demo.Pkg\r\nversion:\r\n  1.0.POST1\r\nRequires-Dist: a\r\n\t>=1\r\nDescription: one\r\n        |two\r\n"
        let metadata = try CoreMetadata(parsing: folded)
        #expect(metadata.name == "Demo.Pkg" && metadata.normalizedName == "demo-pkg" && metadata.version.description == "1.0.post1")
        #expect(metadata.requiresDist.map(\.description) == ["a>=1"] && metadata.requiresPython == nil)
        // The same text with LF line ends reads the same; no blank line at all is fine too.
        let lf = String(folded.unicodeScalars.filter { $0 != "\r" }.map(Character.init))
        #expect(try CoreMetadata(parsing: lf) == metadata)
        #expect(try CoreMetadata(parsing: Array(lf.utf8.dropLast())) == metadata)
    }

    @Test(arguments: [
        ("Name: a\nVersion: 1\n", "no Metadata-Version field"), ("Metadata-Version: 2.1\nVersion: 1\n", "no Name field"),
        ("Metadata-Version: 2.1\nName: a\n", "no Version field"), ("Metadata-Version: 3.0\nName: a\nVersion: 1\n", "newer than the 2.x"),
        ("Metadata-Version: two\nName: a\nVersion: 1\n", "is not MAJOR.MINOR"),
        ("Metadata-Version: 2.1\nName: a\nName: b\nVersion: 1\n", "the field Name appears more than once"),
        ("Metadata-Version: 2.1\nName: a\nVersion: 1\nversion: 2\n", "the field version appears more than once"),
        ("Metadata-Version: 2.1\nName: a\nVersion: 1\nRequires-Python: >=3.7\nRequires-Python: <4\n", "Requires-Python appears more than once"),
        ("Metadata-Version: 2.1\nName: a b\nVersion: 1\n", "the Name \"a b\" is not ASCII letters"),
        ("Metadata-Version: 2.1\nName: a\nVersion: one\n", "Version: version: \"one\" is not a PEP 440 version"),
        ("Metadata-Version: 2.1\nName: a\nVersion: 1\nRequires-Dist: b (>=1\n", "Requires-Dist: requirement: the version specifiers' \"(\" is not closed"),
        ("Metadata-Version: 2.1\nName: a\nVersion: 1\nRequires-Python: 3\n", "Requires-Python: version specifier:"),
        ("Metadata-Version: 2.1\nName: a\nVersion: 1\nProvides-Extra: -x\n", "the Provides-Extra \"-x\""),
        (" folded: first\nName: a\n", "a continuation line before any field"), ("Metadata-Version 2.1\n", "header line 1 has no \":\""),
        ("Metadata-Version: 2.1\n: x\n", "header line 2 has a field name that is empty"),
        ("Metadata-Version: 2.1\nName: a\nVersion: 1\nRequires-Dist: caf\u{E9}\n", "Requires-Dist: requirement: unexpected"),
    ])
    func refusalsNameWhatIsWrong(_ text: String, _ reason: String) {
        expectRefused(reason) { try CoreMetadata(parsing: text) }
    }

    @Test func invalidUTF8InAReadFieldIsRefused() {
        let bytes = Array("Metadata-Version: 2.1\nName: a\nVersion: 1\nSummary: ".utf8) + [0xFF] + Array("\nRequires-Dist: b".utf8) + [0xC3] + [0x0A]
        expectRefused("the Requires-Dist field is not UTF-8") { try CoreMetadata(parsing: bytes) }
    }

    @Test func boundsAreCheckedBeforeParsing() throws {
        let head = "Metadata-Version: 2.1\nName: a\nVersion: 1\n"
        // A megabyte and one byte of garbage: the size is what is reported, not the garbage.
        expectRefused("core metadata: longer than 1048576 bytes") { try CoreMetadata(parsing: [UInt8](repeating: 0x3A, count: (1 << 20) + 1)) }
        let lines = { (count: Int) in head + String(repeating: "X-Field: x\n", count: count - 3) }
        #expect(try CoreMetadata(parsing: lines(4096)).name == "a")
        expectRefused("more than 4096 header lines") { try CoreMetadata(parsing: lines(4097)) }
        let requirements = { (count: Int) in head + String(repeating: "Requires-Dist: b\n", count: count) }
        #expect(try CoreMetadata(parsing: requirements(1024)).requiresDist.count == 1024)
        expectRefused("more than 1024 Requires-Dist fields") { try CoreMetadata(parsing: requirements(1025)) }
    }
}
