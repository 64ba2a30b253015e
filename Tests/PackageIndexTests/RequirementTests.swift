import PackageIndex
import Testing

/// PEP 508 requirements and markers, and PEP 503 name normalization: the spec's examples, the
/// guest's environment, refusals and bounds.
@Suite struct RequirementTests {
    func requirement(_ text: String) throws -> Requirement { try Requirement(parsing: text) }
    func marker(_ text: String) throws -> Marker { try Marker(parsing: text) }
    func holds(_ text: String, _ environment: Environment = .debian12CPython311) throws -> Bool {
        try Marker(parsing: text).evaluate(in: environment)
    }

    @Test func nameNormalizationAndValidity() {
        for name in ["friendly-bar", "Friendly-Bar", "friendly.bar", "friendly_bar", "FRIENDLY_BAR", "friendly--bar", "FrIeNdLy-._.-bAr"] {
            #expect(ProjectName.normalize(name) == "friendly-bar", "\(name)")
        }
        for name in ["A", "a1", "A.B-C_D", "zope.interface", "0"] { #expect(ProjectName.isValid(name), "\(name)") }
        for name in ["", "-a", "a-", "_a", "a.", "a b", "caf\u{E9}", "a/b", String(repeating: "a", count: 257)] {
            #expect(!ProjectName.isValid(name), "\(name)")
        }
    }

    /// PEP 508's "Examples" (the complete grammar's test list), each read into its parts.
    @Test func pep508Examples() throws {
        let a = try requirement(#"requests [security,tests] >= 2.8.1, == 2.8.* ; python_version < "2.7""#)
        #expect(a.name == "requests" && a.extras == ["security", "tests"] && a.specifiers.description == ">=2.8.1,==2.8.*" && a.url == nil)
        #expect(a.marker == .compare(.variable(.pythonVersion), .less, .literal("2.7")))
        let b = try requirement("pip @ https://github.com/pypa/pip/archive/1.3.1.zip#sha1=da9234ee9982d4bbb3c72346a6de940a148ea686")
        #expect(b.name == "pip" && b.url == "https://github.com/pypa/pip/archive/1.3.1.zip#sha1=da9234ee9982d4bbb3c72346a6de940a148ea686" && b.marker == nil)
        #expect(try requirement("name").description == "name" && requirement("name<=1").specifiers.description == "<=1")
        #expect(try requirement("name@http://foo.com").url == "http://foo.com")
        let c = try requirement("name [fred,bar] @ http://foo.com ; python_version=='2.7'")
        #expect(c.extras == ["fred", "bar"] && c.url == "http://foo.com" && c.marker?.description == #"python_version == "2.7""#)
        let d = try requirement("name[quux, strange];python_version<'2.7' and platform_version=='2'")
        #expect(d.extras == ["quux", "strange"])
        #expect(d.marker == .and([.compare(.variable(.pythonVersion), .less, .literal("2.7")), .compare(.variable(.platformVersion), .equal, .literal("2"))]))
        #expect(try requirement("name (>=3)").specifiers == requirement("name>=3").specifiers)
        #expect(try requirement("A.B-C_D").normalizedName == "a-b-c-d" && requirement("aa").normalizedName == "aa")
        #expect(try requirement("Name[Extra_One]").normalizedExtras == ["extra-one"])
    }

    /// The precedence examples: `and` binds tighter than `or`; parentheses group.
    @Test func markerPrecedence() throws {
        func environment(_ osName: String) -> Environment {
            var environment = Environment.debian12CPython311
            environment.osName = osName
            return environment
        }
        let cases: [(String, [String: Bool])] = [
            ("os_name=='a' or os_name=='b'", ["a": true, "b": true, "c": false]),
            ("os_name=='a' and os_name=='b' or os_name=='c'", ["a": false, "b": false, "c": true]),
            ("os_name=='a' and (os_name=='b' or os_name=='c')", ["a": false, "b": false, "c": false]),
            ("os_name=='a' or os_name=='b' and os_name=='c'", ["a": true, "b": false, "c": false]),
            ("(os_name=='a' or os_name=='b') and os_name!='c'", ["a": true, "b": true, "c": false]),
        ]
        for (text, answers) in cases {
            for (osName, expected) in answers { #expect(try holds(text, environment(osName)) == expected, "\(text) with os_name \(osName)") }
        }
        #expect(try marker("os_name=='a' and os_name=='b' or os_name=='c'") == .or([
            .and([.compare(.variable(.osName), .equal, .literal("a")), .compare(.variable(.osName), .equal, .literal("b"))]),
            .compare(.variable(.osName), .equal, .literal("c")),
        ]))
    }

    /// Debian 12's CPython 3.11: versions compared as versions, other values as strings.
    @Test func guestEnvironment() throws {
        let guest = Environment.debian12CPython311
        #expect(MarkerVariable.allCases.map { guest.value(of: $0) } == [
            "3.11", "3.11.2", "posix", "linux", "", "Linux", "", "x86_64", "CPython", "cpython", "3.11.2", "",
        ])
        let yes = [
            #"python_version >= "3.8""#, #"python_version > "3.9""#, #"python_version == "3.11""#, #"python_version == "3.*""#,
            #"python_version ~= "3.1""#, #"python_full_version >= "3.11.1""#, #"python_full_version < "3.12""#, #""3.11" == python_version"#,
            #"sys_platform == "linux""#, #"os_name == "posix""#, #"platform_machine in "x86_64 aarch64""#, #""linux" in sys_platform"#,
            #"os_name not in "nt""#, #"implementation_name == "cpython""#, #"platform_python_implementation == 'CPython'"#,
            #"platform_system == "Linux""#, #"implementation_version >= "3""#, #"sys.platform == "linux""#, #"python_implementation == "CPython""#,
            #"python_version < "3.11" or sys_platform != "win32""#, #""b" > "a""#, #"platform_release < "5""#,
        ]
        for text in yes { #expect(try holds(text), "\(text)") }
        let no = [
            #"python_version < "3.8""#, #"python_version > "3.11""#, #"python_version == "2.7""#, #"sys_platform == "win32""#,
            #"platform_system == "Windows""#, #"os_name in "nt""#, #"platform_machine == "aarch64""#, #"implementation_name == "pypy""#,
            #"extra == "socks""#, #"python_full_version < "3.11.2""#, #""a" >= "b""#,
        ]
        for text in no { #expect(try !holds(text), "\(text)") }
        // String fallback, as Python compares: "3.11" is not a version on the left of "linux".
        #expect(try holds(#"sys_platform < "m""#) && !holds(#"sys_platform > "m""#))
        expectRefused(#"~= compares versions only"#) { try Marker(parsing: #"os_name ~= "posix""#).evaluate(in: .debian12CPython311) }
    }

    @Test func extrasCompareNormalized() throws {
        let socks = try requirement("PySocks (!=1.5.7,>=1.5.6) ; extra == 'socks'")
        #expect(try !socks.applies(in: .debian12CPython311) && socks.applies(in: .debian12CPython311, extras: ["socks"]))
        #expect(try socks.applies(in: .debian12CPython311, extras: ["SOCKS"]) && !socks.applies(in: .debian12CPython311, extras: ["security"]))
        let chardet = try requirement("chardet (<6,>=3.0.2) ; extra == 'use_chardet_on_py3'")
        #expect(try chardet.applies(in: .debian12CPython311, extras: ["use-chardet-on-py3"]))
        #expect(try requirement("certifi>=2017.4.17").applies(in: .debian12CPython311, extras: []))
        #expect(try !requirement("x; python_version < '3'").applies(in: .debian12CPython311, extras: ["a"]))
    }

    @Test func descriptionsReadBack() throws {
        for text in [
            #"requests [security,tests] >= 2.8.1, == 2.8.* ; python_version < "2.7""#, "name [fred,bar] @ http://foo.com ; python_version=='2.7'",
            "name; os_name=='a' and (os_name=='b' or os_name=='c') and (extra == 'x')", "name; (os_name=='a' or (os_name=='b')) or os_name=='c'",
            #"name; os_name == "it's""#, "name; os_name == 'say \"hi\"'", "a.b-c_d[x]===weird; 'x' not in platform_version",
        ] {
            let parsed = try requirement(text)
            #expect(try requirement(parsed.description) == parsed, "\(text) → \(parsed)")
        }
        #expect(try requirement("name; (os_name=='a' or (os_name=='b')) or os_name=='c'").marker?.description
                == #"os_name == "a" or os_name == "b" or os_name == "c""#)
        #expect(try requirement("name [fred] @ http://foo.com ; os_name=='a'").description == #"name[fred] @ http://foo.com ; os_name == "a""#)
    }

    @Test(arguments: [
        ("", "no project name"), ("-name", "\"-name\" is not ASCII letters"), ("name-", "\"name-\" is not ASCII letters"), ("name[", "no extra name"),
        ("name[a", "the extras are not closed"), ("name[a,]", "no extra name"), ("name (>=1.0", "\"(\" is not closed"),
        ("name >= 1.0 garbage", "has spaces"), ("name extra", "unexpected \"extra\""), ("name; ", "nothing after \";\""),
        ("name @ ", "no URL after \"@\""), ("name @ http://x\u{1}", "control or non-ASCII"), ("caf\u{E9}", "unexpected \"\\xc3\\xa9\" at byte 3"),
        ("name; python_version <", "ends where a variable or a quoted string should be"), ("name; os_name == 'a' and", "ends where a variable"),
        ("name; foo == 'x'", "\"foo\" is not a marker variable"), ("name; python_version = '3'", "is not a comparison operator"),
        ("name; python_version < '3.8", "a quoted string is not closed"), ("name; (python_version < '3'", "a \"(\" is not closed"),
        ("name; python_version < '3' os_name", "unexpected \"os_name\" after a whole marker"), ("name; os_name == 'a\\b'", "python_str does not allow"),
        ("name; os_name is 'a'", "\"is\" where an operator"), ("name; os_name not 'a'", "where an operator"),
    ])
    func refusalsNameWhatIsWrong(_ text: String, _ reason: String) {
        expectRefused(reason) { try Requirement(parsing: text) }
    }

    @Test func boundsAreCheckedBeforeParsing() throws {
        let nested = { (depth: Int) in String(repeating: "(", count: depth) + "os_name == 'posix'" + String(repeating: ")", count: depth) }
        #expect(try holds(nested(32)))
        expectRefused("parentheses nested deeper than 32") { try Marker(parsing: nested(33)) }
        // Unbalanced and deep: refused at depth 33, long before the end.
        expectRefused("parentheses nested deeper than 32") { try Marker(parsing: String(repeating: "(", count: 2000)) }
        expectRefused("environment marker: longer than 4096 bytes") { try Marker(parsing: String(repeating: "(", count: 4097)) }
        expectRefused("requirement: longer than 4096 bytes") { try Requirement(parsing: "a" + String(repeating: " ", count: 4096)) }
        #expect(try requirement("a" + String(repeating: " ", count: 4095)).name == "a")
        let extras = { (count: Int) in "name[" + (0..<count).map { "e\($0)" }.joined(separator: ",") + "]" }
        #expect(try requirement(extras(64)).extras.count == 64)
        expectRefused("more than 64 extras") { try Requirement(parsing: extras(65)) }
    }
}
