import PackageIndex
import Testing

/// Simple index project pages, HTML (PEP 503) and JSON (PEP 691), and RFC 3986 reference resolution.
@Suite struct SimpleIndexTests {
    static let page = "https://pypi.org/simple/demo/"
    static let sha = String(repeating: "ab", count: 32)
    static let metadataSHA = String(repeating: "cd", count: 32)

    func html(_ text: String, url: String = SimpleIndexTests.page) throws -> ProjectPage { try SimpleIndex.projectPage(html: Array(text.utf8), url: url) }
    func json(_ text: String, url: String = SimpleIndexTests.page) throws -> ProjectPage { try SimpleIndex.projectPage(json: Array(text.utf8), url: url) }

    /// RFC 3986 §5.4.1 and §5.4.2: every normal and abnormal example against "http://a/b/c/d;p?q".
    @Test(arguments: [
        ("g:h", "g:h"), ("g", "http://a/b/c/g"), ("./g", "http://a/b/c/g"), ("g/", "http://a/b/c/g/"), ("/g", "http://a/g"), ("//g", "http://g"),
        ("?y", "http://a/b/c/d;p?y"), ("g?y", "http://a/b/c/g?y"), ("#s", "http://a/b/c/d;p?q#s"), ("g#s", "http://a/b/c/g#s"),
        ("g?y#s", "http://a/b/c/g?y#s"), (";x", "http://a/b/c/;x"), ("g;x", "http://a/b/c/g;x"), ("g;x?y#s", "http://a/b/c/g;x?y#s"),
        ("", "http://a/b/c/d;p?q"), (".", "http://a/b/c/"), ("./", "http://a/b/c/"), ("..", "http://a/b/"), ("../", "http://a/b/"),
        ("../g", "http://a/b/g"), ("../..", "http://a/"), ("../../", "http://a/"), ("../../g", "http://a/g"),
        ("../../../g", "http://a/g"), ("../../../../g", "http://a/g"), ("/./g", "http://a/g"), ("/../g", "http://a/g"), ("g.", "http://a/b/c/g."),
        (".g", "http://a/b/c/.g"), ("g..", "http://a/b/c/g.."), ("..g", "http://a/b/c/..g"), ("./../g", "http://a/b/g"), ("./g/.", "http://a/b/c/g/"),
        ("g/./h", "http://a/b/c/g/h"), ("g/../h", "http://a/b/c/h"), ("g;x=1/./y", "http://a/b/c/g;x=1/y"), ("g;x=1/../y", "http://a/b/c/y"),
        ("g?y/./x", "http://a/b/c/g?y/./x"), ("g?y/../x", "http://a/b/c/g?y/../x"), ("g#s/./x", "http://a/b/c/g#s/./x"),
        ("g#s/../x", "http://a/b/c/g#s/../x"), ("http:g", "http:g"),
    ])
    func rfc3986Examples(_ reference: String, _ target: String) {
        #expect(URLReference(reference).resolved(against: URLReference("http://a/b/c/d;p?q")).description == target)
    }

    /// A page as PyPI serves it: hashes, Requires-Python with entities, yanked with and without a
    /// reason, core metadata under both attribute names, relative and absolute URLs.
    @Test func htmlProjectPage() throws {
        let text = """
            <!DOCTYPE html>
            <html>
              <head><meta name="pypi:repository-version" content="1.1"><title>Links for demo</title></head>
              <body>
                <h1>Links for demo</h1>
                <a href="https://files.example.org/packages/ab/cd/demo-1.0-py3-none-any.whl#sha256=\(Self.sha.uppercased())" data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256=\(Self.metadataSHA)" data-core-metadata="sha256=\(Self.metadataSHA)">demo-1.0-py3-none-any.whl</a><br />
                <A HREF='../../packages/demo-0.9.tar.gz#md5=\(String(repeating: "0f", count: 16))' data-yanked="broken &amp; &#39;old&#x27;" DATA-REQUIRES-PYTHON="&lt;4,&gt;=3.7">
                  demo-0.9.tar.gz
                </A>
                <a href=/packages/demo-0.8-py3-none-any.whl data-yanked data-dist-info-metadata=true>demo-0.8-py3-none-any.whl</a>
                <a href="demo-0.7.zip#egg=demo">demo-0.7.zip</a>
                <!-- <a href="https://evil.example/x">x</a> -->
                <a name="anchor-without-href">not a file</a>
                <a href="demo%2B1.0-0.6.tar.gz">demo+1.0-0.6.tar.gz</a>
              </body>
            </html>
            """
        let files = try html(text).files
        #expect(files.map(\.filename) == ["demo-1.0-py3-none-any.whl", "demo-0.9.tar.gz", "demo-0.8-py3-none-any.whl", "demo-0.7.zip", "demo+1.0-0.6.tar.gz"])
        #expect(files.map(\.url) == [
            "https://files.example.org/packages/ab/cd/demo-1.0-py3-none-any.whl", "https://pypi.org/packages/demo-0.9.tar.gz",
            "https://pypi.org/packages/demo-0.8-py3-none-any.whl", "https://pypi.org/simple/demo/demo-0.7.zip",
            "https://pypi.org/simple/demo/demo%2B1.0-0.6.tar.gz",
        ])
        #expect(files[0].sha256 == Self.sha && files[0].hashes == ["sha256": Self.sha] && files[0].requiresPython == ">=3.8")
        #expect(files[0].coreMetadata == ["sha256": Self.metadataSHA] && !files[0].isYanked && files[0].yankedReason == nil)
        #expect(files[1].hashes == ["md5": String(repeating: "0f", count: 16)] && files[1].sha256 == nil && files[1].requiresPython == "<4,>=3.7")
        #expect(files[1].isYanked && files[1].yankedReason == "broken & 'old'" && files[1].coreMetadata == nil)
        #expect(files[2].isYanked && files[2].yankedReason == nil && files[2].coreMetadata == [:] && files[2].requiresPython == nil)
        #expect(files[3].hashes.isEmpty)
        #expect(try html(text).name == nil)
    }

    @Test func baseElementSetsTheBase() throws {
        let files = try html(#"<html><head><base href="https://mirror.example/files/"></head><a href="x/demo-1.0.tar.gz">demo-1.0.tar.gz</a>"#).files
        #expect(files.map(\.url) == ["https://mirror.example/files/x/demo-1.0.tar.gz"])
        #expect(try html(#"<a href="//cdn.example/p/demo-1.0.tar.gz">demo-1.0.tar.gz</a>"#, url: "http://index.example/simple/demo/").files[0].url
                == "http://cdn.example/p/demo-1.0.tar.gz")
    }

    @Test(arguments: [
        (#"<a href="file:///etc/passwd">passwd</a>"#, "the URL of \"passwd\" is not http(s)"),
        (#"<a href="javascript:alert(1)">alert(1)</a>"#, "is not http(s)"),
        (#"<a href="https://x.example/evil.whl">good-1.0-py3-none-any.whl</a>"#, "is not the last segment of its URL"),
        (#"<a href="../a/b">a/b</a>"#, "is not one printable ASCII path component"),
        (#"<a href="x/..">..</a>"#, "is not one printable ASCII path component"),
        (#"<a href="demo-1.0.tar.gz#sha256=abc">demo-1.0.tar.gz</a>"#, "the sha256 of \"demo-1.0.tar.gz\" is not 64 hex digits"),
        (#"<a href="demo-1.0.tar.gz#md5=\#(String(repeating: "z", count: 32))">demo-1.0.tar.gz</a>"#, "the md5 of"),
        (#"<a href="demo-1.0.tar.gz">demo-1.0.tar.gz"#, "an <a> element is not closed"), (#"<a href="demo-1.0.tar.gz"#, "is not closed"),
        (#"<a href="x y">x</a>"#, "the URL of \"x\" has spaces, control or non-ASCII characters"), (#"<a href="x">x<a href="y">y</a></a>"#, "an <a> element inside another"),
        (#"<a href="x">  </a>"#, "a file name is empty"), (#"<base href="ftp://x/"><a href="x">x</a>"#, "the <base href> is not an http(s) URL"),
        (#"<a href="x" data-core-metadata="sha256=xyz">x</a>"#, "the sha256 of \"x\" is not 64 hex digits"),
    ])
    func htmlRefusalsNameWhatIsWrong(_ text: String, _ reason: String) {
        expectRefused(reason) { try SimpleIndex.projectPage(html: Array(text.utf8), url: Self.page) }
    }

    @Test func pageURLMustBeHTTP() {
        expectRefused("the page URL \"file:///simple/demo/\" is not an absolute http(s) URL") { try SimpleIndex.projectPage(html: [], url: "file:///simple/demo/") }
        expectRefused("not an absolute http(s) URL") { try SimpleIndex.projectPage(json: [], url: "/simple/demo/") }
        expectRefused("not an absolute http(s) URL") { try SimpleIndex.projectPage(json: [], url: "https:///simple/") }
    }

    @Test func characterReferences() throws {
        let files = try html(#"<a href="x" data-requires-python="&lt;&gt;&amp;&quot;&#39;&apos;&#60;&#x3C;&#X3c;&unknown;&#0;&#xD800;&;&amp">x</a>"#).files
        #expect(files[0].requiresPython == "<>&\"''<<<&unknown;\u{FFFD}\u{FFFD}&;&amp")
    }

    @Test func jsonProjectPage() throws {
        let text = """
            {"meta": {"api-version": "1.1", "_last-serial": 7}, "name": "demo", "versions": ["0.9", "1.0"],
             "files": [
              {"filename": "demo-1.0-py3-none-any.whl", "url": "https://files.example.org/demo-1.0-py3-none-any.whl",
               "hashes": {"sha256": "\(Self.sha.uppercased())", "blake2b_256": "00ff"}, "requires-python": ">=3.8", "yanked": false,
               "core-metadata": {"sha256": "\(Self.metadataSHA)"}, "data-dist-info-metadata": true, "size": 1024, "upload-time": null},
              {"filename": "demo-0.9.tar.gz", "url": "../../packages/demo-0.9.tar.gz#sha256=ignored", "hashes": {}, "yanked": "broken \\u0026 \\ud83d\\ude00",
               "requires-python": null, "dist-info-metadata": false},
              {"filename": "demo-0.8.tar.gz", "url": "/p/demo-0.8.tar.gz", "hashes": {}, "yanked": true, "data-dist-info-metadata": true}
             ]}
            """
        let parsed = try json(text)
        #expect(parsed.name == "demo" && parsed.files.count == 3)
        let (a, b, c) = (parsed.files[0], parsed.files[1], parsed.files[2])
        #expect(a.hashes == ["sha256": Self.sha, "blake2b_256": "00ff"] && a.requiresPython == ">=3.8" && !a.isYanked)
        #expect(a.coreMetadata == ["sha256": Self.metadataSHA] && a.url == "https://files.example.org/demo-1.0-py3-none-any.whl")
        #expect(b.url == "https://pypi.org/packages/demo-0.9.tar.gz" && b.hashes.isEmpty && b.requiresPython == nil)
        #expect(b.isYanked && b.yankedReason == "broken & \u{1F600}" && b.coreMetadata == nil)
        #expect(c.isYanked && c.yankedReason == nil && c.coreMetadata == [:] && c.url == "https://pypi.org/p/demo-0.8.tar.gz")
    }

    @Test(arguments: [
        (#"{"meta": {"api-version": "2.0"}, "files": []}"#, "api-version \"2.0\" is not 1.x"), (#"{"files": []}"#, "no meta.api-version"),
        (#"{"meta": {"api-version": "1.0"}, "files": [], "files": []}"#, "the member \"files\" appears more than once"),
        (#"{"meta": {"api-version": "1.0", "api-version": "1.1"}, "files": []}"#, "the member \"api-version\" appears more than once"),
        (#"{"meta": {"api-version": 1}, "files": []}"#, "\"meta.api-version\" is not a string"), (#"{"meta": [], "files": []}"#, "\"meta\" is not an object"),
        (#"{"meta": {"api-version": "1.0"}, "files": {}}"#, "\"files\" is not an array"),
        (#"{"meta": {"api-version": "1.0"}, "files": [{"url": "x", "hashes": {}}]}"#, "files[0] has no filename"),
        (#"{"meta": {"api-version": "1.0"}, "files": [{"filename": "x", "hashes": {}}]}"#, "has no url"),
        (#"{"meta": {"api-version": "1.0"}, "files": [{"filename": "x", "url": "x"}]}"#, "has no hashes"),
        (#"{"meta": {"api-version": "1.0"}, "files": [{"filename": "x", "url": "x", "hashes": {}, "yanked": 1}]}"#, "files[0].yanked is neither a boolean nor a string"),
        (#"{"meta": {"api-version": "1.0"}, "files": [{"filename": "x", "url": "x", "hashes": {"sha256": "zz"}}]}"#, "the sha256 of \"x\" is not 64 hex digits"),
        (#"{"meta": {"api-version": "1.0"}, "files": [{"filename": "x", "url": "x", "hashes": {"weird": "not hex"}}]}"#, "is not a name and hex digits"),
        (#"{"meta": {"api-version": "1.0"}, "files": [{"filename": "x", "url": "x", "hashes": {}, "core-metadata": "yes"}]}"#, "neither a boolean nor an object"),
        (#"{"meta": {"api-version": "1.0"}, "files": [{"filename": "x", "url": "file:///x", "hashes": {}}]}"#, "is not http(s)"),
        (#"{"meta": {"api-version": "1.0"}, "files": [{"filename": "a/b", "url": "x", "hashes": {}}]}"#, "not one printable ASCII path component"),
        (#"{"meta": {"api-version": "1.0"}, "files": []} x"#, "text after the JSON value"), (#"{"meta": {"api-version": "1.0"},}"#, "does not start with a string name"),
        (#"{"meta": {"api-version": "1.0"}, "x": [1,]}"#, "a value cannot start with \"]\""), (#"[]"#, "an object expected"),
        (#"{"meta": {"api-version": "1.0"}, "x": "\ud800"}"#, "a lone high surrogate"), (#"{"meta": {"api-version": "1.0"}, "x": "a\#tb"}"#, "a control character"),
        (#"{"meta": {"api-version": "1.0"}, "x": 01}"#, "no \",\" or \"}\" after an object member"), (#"{"meta": {"api-version": "1.0"}, "x": tru}"#, "true or false expected"),
    ])
    func jsonRefusalsNameWhatIsWrong(_ text: String, _ reason: String) {
        expectRefused(reason) { try SimpleIndex.projectPage(json: Array(text.utf8), url: Self.page) }
    }

    @Test func boundsAreCheckedBeforeParsing() throws {
        // Over 16 MiB of bytes that are not even UTF-8: the size is what is reported.
        let huge = [UInt8](repeating: 0xFF, count: SimpleIndex.maximumPageBytes + 1)
        expectRefused("simple index page: longer than 16777216 bytes") { try SimpleIndex.projectPage(html: huge, url: Self.page) }
        expectRefused("longer than 16777216 bytes") { try SimpleIndex.projectPage(json: huge, url: Self.page) }
        expectRefused("the page is not UTF-8") { try SimpleIndex.projectPage(html: [0x3C, 0xFF], url: Self.page) }
        let longHref = String(repeating: "a", count: SimpleIndex.maximumHrefBytes + 1)
        expectRefused("the href of \"a\" is longer than 8192 bytes") { try html("<a href=\"\(longHref)\">a</a>") }
        expectRefused("the URL of \"a\" is longer than 8192 bytes") {
            try json(#"{"meta": {"api-version": "1.0"}, "files": [{"filename": "a", "url": "\#(longHref)", "hashes": {}}]}"#)
        }
        // A hostile page of anchors that never close is refused at the second, not walked again for each.
        expectRefused("an <a> element inside another") { try html(String(repeating: "<a href=a>", count: 100_000)) }
        expectRefused("an <a> element is not closed") { try html("<a href=a><!-- " + String(repeating: "<a href=a>", count: 100_000)) }
        let deep = String(repeating: "[", count: 17) + String(repeating: "]", count: 17)
        expectRefused("nesting deeper than 16") { try json(#"{"meta": {"api-version": "1.0"}, "x": \#(deep)}"#) }
        #expect(try json(#"{"meta": {"api-version": "1.0"}, "x": \#(String(repeating: "[", count: 15) + String(repeating: "]", count: 15))}"#).files.isEmpty)
    }

    /// 100 000 files are read; one more is refused (HTML and JSON).
    @Test func fileCountIsBounded() throws {
        let anchors = { (count: Int) in String(repeating: "<a href=a>a</a>", count: count) }
        #expect(try html(anchors(SimpleIndex.maximumFiles)).files.count == SimpleIndex.maximumFiles)
        expectRefused("more than 100000 files") { try html(anchors(SimpleIndex.maximumFiles + 1)) }
        let entries = { (count: Int) in
            #"{"meta": {"api-version": "1.0"}, "files": ["# + Array(repeating: #"{"filename": "a", "url": "a", "hashes": {}}"#, count: count).joined(separator: ",") + "]}"
        }
        expectRefused("more than 100000 files") { try json(entries(SimpleIndex.maximumFiles + 1)) }
    }
}
