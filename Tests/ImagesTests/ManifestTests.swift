import Foundation
@testable import Images
import Testing

@Suite struct ManifestTests {
    @Test func aManifestRoundTripsThroughItsJSON() throws {
        let manifest = sampleManifest(digest: ImageDigest(String(repeating: "ab", count: 32))!)
        let bytes = manifest.encoded()
        #expect(try ImageManifest.decode(bytes, path: "m.json") == manifest)
        // Keys sorted, two-space indented, slashes unescaped, a final newline.
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("{\n  \"architecture\" : \"amd64\",\n  \"buildSeconds\" : 42.5,\n  \"builtAt\" : \"2026-12-06T18:00:00Z\",\n"))
        #expect(text.contains("\"deb http://deb.debian.org/debian bookworm main\""))
        #expect(text.hasSuffix("}\n"))
        // Equal manifests encode to equal bytes.
        #expect(sampleManifest(digest: manifest.imageDigest).encoded() == bytes)
    }

    @Test func everyFieldIsRequired() throws {
        let whole = try JSONSerialization.jsonObject(with: Data(sampleManifest(digest: ImageDigest(String(repeating: "0", count: 64))!).encoded()))
        let fields = try #require(whole as? [String: Any])
        #expect(fields.count == 20)
        for key in fields.keys {
            var without = fields
            without[key] = nil
            let bytes = Array(try JSONSerialization.data(withJSONObject: without))
            #expect(throws: ImageError.failed("image manifest m.json is damaged: field \(key) is missing")) {
                try ImageManifest.decode(bytes, path: "m.json")
            }
        }
    }

    @Test func outOfRangeFieldsAreRefused() {
        var manifest = sampleManifest(digest: ImageDigest(String(repeating: "1", count: 64))!)
        manifest.digest = "md5:00"
        #expect(throws: ImageError.self) { try ImageManifest.decode(manifest.encoded(), path: "m") }
        manifest = sampleManifest(digest: ImageDigest(String(repeating: "1", count: 64))!)
        manifest.sizeBytes = 4097
        #expect(throws: ImageError.failed("image manifest m is damaged: size 4097 is not a whole number of 4 KiB blocks")) {
            try ImageManifest.decode(manifest.encoded(), path: "m")
        }
        manifest = sampleManifest(digest: ImageDigest(String(repeating: "1", count: 64))!, name: "Bad Name")
        #expect(throws: ImageError.self) { try ImageManifest.decode(manifest.encoded(), path: "m") }
    }

    @Test func digestsParseInEitherFormAndCase() {
        let hex = String(repeating: "Ab", count: 32)
        #expect(ImageDigest(hex)?.hex == hex.lowercased())
        #expect(ImageDigest("sha256:" + hex)?.description == "sha256:" + hex.lowercased())
        #expect(ImageDigest(hex)?.short == "abababababab")
        for bad in ["", "sha256:", String(hex.dropLast()), hex + "0", "sha512:" + hex, String(repeating: "g", count: 64)] {
            #expect(ImageDigest(bad) == nil)
        }
    }
}
