import BrainWire
import Testing

@Suite struct JSONScanTests {
    func bytes(_ text: String) -> ArraySlice<UInt8> { Array(text.utf8)[...] }
    func valid(_ text: String) -> Bool { (try? JSONScan.validate(bytes(text)).get()) != nil }

    @Test(arguments: [
        "0", "-0", "1.5e-3", "-12E+2", "true", "null", "\"\"", " [ ] ", "{}", "\t{\"a\" : [1, {\"b\":null}] }\r\n",
        "\"\\u00e9\\ud83d\\ude00\\/\\b\\f\\n\\r\\t\\\\\\\"\"", "\"\u{e9}\u{1F600}\"", "[1e400]", "123456789012345678901234567890",
    ])
    func validDocumentsPass(_ text: String) {
        #expect(valid(text), "\(text.debugDescription)")
    }

    @Test(arguments: [
        "", " ", "01", "-", "1.", ".5", "1e", "+1", "0x10", "[1,]", "{\"a\":1,}", "[1 2]", "{\"a\" 1}", "{a:1}", "'a'",
        "[1] x", "{} {}", "tru", "nul", "True", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\x\"", "\"\\u12g4\"",
        "\"a\tb\"", "\"abc", "[", "{\"a\":", "NaN", "Infinity", "\u{FEFF}{}",
    ])
    func invalidDocumentsFail(_ text: String) {
        #expect(!valid(text), "\(text.debugDescription)")
    }

    @Test func utf8IsCheckedInStrings() {
        func quoted(_ raw: [UInt8]) -> Bool { (try? JSONScan.validate(([0x22] + raw + [0x22])[...]).get()) != nil }
        #expect(quoted([0xC3, 0xA9]) && quoted([0xE2, 0x82, 0xAC]) && quoted([0xF0, 0x9F, 0x98, 0x80]) && quoted([0xF4, 0x8F, 0xBF, 0xBF]))
        #expect(!quoted([0xC0, 0xAF]))              // overlong "/"
        #expect(!quoted([0xE0, 0x80, 0xAF]))        // overlong, three bytes
        #expect(!quoted([0xED, 0xA0, 0x80]))        // an encoded surrogate
        #expect(!quoted([0xF4, 0x90, 0x80, 0x80]))  // past U+10FFFF
        #expect(!quoted([0xC3]))                    // cut short
        #expect(!quoted([0x80]))                    // a lone continuation byte
        #expect(!quoted([0xFF]))
    }

    @Test func depthIsBoundedAtSixtyFour() {
        let limit = JSONScan.maximumDepth
        #expect(valid(String(repeating: "[", count: limit) + String(repeating: "]", count: limit)))
        #expect(!valid(String(repeating: "[", count: limit + 1) + String(repeating: "]", count: limit + 1)))
        let objects = String(repeating: "{\"a\":", count: limit) + "1" + String(repeating: "}", count: limit)
        #expect(valid(objects))
        #expect(!valid("[" + objects + "]"))
        // A hostile depth fails fast, without a deep recursion.
        #expect(!valid(String(repeating: "[", count: 1 << 20)))
    }

    @Test func membersKeepOrderRangesAndDuplicates() throws {
        let text = bytes(#" {"b":[1,2], "a\u0062" : "x", "b":{"c":true}, "n":null} "#)
        let object = try JSONScan.object(text).get()
        #expect(object.members.map(\.key) == ["b", "ab", "b", "n"])
        #expect(object.members.map(\.kind) == [.array, .string, .object, .null])
        #expect(String(decoding: text[object.members[1].keyRange], as: UTF8.self) == #""a\u0062""#)
        #expect(String(decoding: text[object.members[1].valueRange], as: UTF8.self) == #""x""#)
        #expect(text[object.range].first == UInt8(ascii: "{") && text[object.range].last == UInt8(ascii: "}"))
        #expect(throws: JSONError.self) { try object.member(named: "b").get() }
        #expect(try object.member(named: "ab").get()?.kind == .string)
        #expect(try object.member(named: "zz").get() == nil)
        // A nested object is scanned in place: its ranges index the same document.
        let inner = try JSONScan.object(text[object.members[2].valueRange]).get()
        #expect(inner.members.map(\.key) == ["c"])
        #expect(JSONScan.bool(text[inner.members[0].valueRange]) == true)
        #expect(try JSONScan.array(text[object.members[0].valueRange]).get().count == 2)
        #expect(throws: JSONError.self) { try JSONScan.object(self.bytes("[1]")).get() }
    }

    @Test func namesCompareAsCodePoints() throws {
        // U+212A KELVIN SIGN is canonically equivalent to "K" for Swift's ==, not for a JSON reader.
        let object = try JSONScan.object(bytes(#"{"\u212Aey":1,"Key":2}"#)).get()
        #expect(try object.member(named: "Key").get()?.valueRange.count == 1)
        #expect(object.members(named: "Key").count == 1)
    }

    @Test func valueDecoders() {
        #expect(JSONScan.string(bytes(#""a\"b\u00e9\ud83d\ude00""#)) == "a\"b\u{e9}\u{1F600}")
        #expect(JSONScan.string(bytes("12")) == nil && JSONScan.string(bytes(#""a" "#)) == nil && JSONScan.string(bytes(#""\ud800""#)) == nil)
        #expect(JSONScan.integer(bytes("0")) == 0 && JSONScan.integer(bytes("-0")) == 0 && JSONScan.integer(bytes("4096")) == 4096)
        #expect(JSONScan.integer(bytes("9223372036854775807")) == Int.max)
        #expect(JSONScan.integer(bytes("-9223372036854775808")) == Int.min)
        #expect(JSONScan.integer(bytes("9223372036854775808")) == nil)
        #expect(JSONScan.integer(bytes("99999999999999999999999")) == nil)
        for text in ["1.0", "1e2", "01", "-", "", "\"1\"", " 1", "+1", "true"] { #expect(JSONScan.integer(bytes(text)) == nil, "\(text)") }
        #expect(JSONScan.bool(bytes("true")) == true && JSONScan.bool(bytes("false")) == false && JSONScan.bool(bytes("1")) == nil)
        #expect(JSONScan.isNull(bytes("null")) && !JSONScan.isNull(bytes("nul")))
    }

    @Test func insertionNeedsACommaOnlyAfterAMember() throws {
        let empty = bytes("{ }")
        let point = try JSONScan.object(empty).get().insertion(of: Array(#""x":1"#.utf8))
        #expect(point.at == 1 && point.bytes == Array(#""x":1"#.utf8))
        let full = bytes(#"{"a":1 }"#)
        let after = try JSONScan.object(full).get().insertion(of: Array(#""x":1"#.utf8))
        #expect(after.at == 6 && after.bytes == Array(#","x":1"#.utf8))
    }

    @Test func errorsSayWhere() {
        guard case .failure(let error) = JSONScan.validate(bytes("[1,]")) else {
            Issue.record("accepted")
            return
        }
        #expect(error.offset == 3)
        #expect(error.description.contains("at byte 3"))
    }
}
