import Testing
@testable import TestServers

@Suite struct JSONTests {
    @Test func roundTripsInOrder() throws {
        let text = #"{"b":[1,-2,3.5,true,false,null],"a":{"s":"q\"\\\n\u0001é✓"},"e":1e3}"#
        let value = try JSON.parse(text)
        #expect(value["b"]?.array?.count == 6)
        #expect(value["e"] == .double(1000))
        #expect(value["a"]?["s"]?.string == "q\"\\\n\u{1}é✓")
        #expect(try JSON.parse(value.text) == value)
        #expect(value.text.hasPrefix(#"{"b":[1,-2,3.5,true,false,null],"a":"#))
    }

    @Test func surrogatePairsAndLoneSurrogates() throws {
        #expect(try JSON.parse(#""\ud83d\ude00""#).string == "😀")
        #expect(try JSON.parse(#""\ud83dx""#).string == "\u{FFFD}x")
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "tru", "\"a", "\"\u{1}\"", "[1] 2", "\"\\x\"", "1e999"])
    func refusesBadInput(_ text: String) {
        #expect(throws: JSONError.self) { try JSON.parse(text) }
    }

    @Test func boundsDepth() throws {
        let deep = String(repeating: "[", count: JSON.maxDepth + 1) + String(repeating: "]", count: JSON.maxDepth + 1)
        #expect(throws: JSONError.self) { try JSON.parse(deep) }
        let fine = String(repeating: "[", count: JSON.maxDepth) + "1" + String(repeating: "]", count: JSON.maxDepth)
        #expect(try JSON.parse(fine).array != nil)
        // A hostile depth far past the bound is refused, not a stack overflow.
        #expect(throws: JSONError.self) { try JSON.parse(String(repeating: #"[{"a":"#, count: 100_000)) }
    }

    @Test func invalidUTF8IsAnError() {
        #expect(throws: JSONError.self) { try JSON.parse([0x22, 0xFF, 0x22]) }
    }
}

@Suite struct SHA256Tests {
    // FIPS 180-4 examples (NIST CSRC "SHA-256" example values).
    @Test func knownDigests() {
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func piecesGiveTheSameDigest() {
        let bytes = (0..<1000).map { UInt8($0 % 251) }
        var hasher = SHA256()
        for start in stride(from: 0, to: 1000, by: 37) { hasher.update(bytes[start..<min(start + 37, 1000)]) }
        #expect(hasher.finalizeHex() == SHA256.hex(bytes))
    }
}
