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

@Suite struct ImportManifestTests {
    static let digest = ImageDigest(String(repeating: "cd", count: 32))!

    @Test func anImportManifestRoundTrips() throws {
        var neutralised = Neutralised()
        neutralised.deviceNodes = 2
        let source = ImportedImage(format: "docker-archive", source: "sha256:" + String(repeating: "1", count: 64), manifest: nil,
                                   config: "sha256:" + String(repeating: "2", count: 64), architecture: "amd64",
                                   layers: ["sha256:" + String(repeating: "3", count: 64)], layerBytes: 10240, entries: 7,
                                   neutralised: neutralised)
        let manifest = ImageManifest.imported(digest: Self.digest, name: "alpine", source: source, e2fsprogs: "1.47.0",
                                              filesystemUUID: "0b8f8a3e-0000-4000-8000-000000000000", sizeBytes: 32 << 20, treeBytes: 1 << 20,
                                              inodes: 40, builtAt: "2026-12-06T18:00:00Z", buildSeconds: 1.5,
                                              inputsKey: String(repeating: "b", count: 64))
        let decoded = try ImageManifest.decode(manifest.encoded(), path: "m")
        #expect(decoded == manifest && decoded.kind == "import" && decoded.schema == 2 && decoded.imported?.neutralised.deviceNodes == 2)
        // kind and fields must agree.
        var wrong = manifest
        wrong.kind = "debian"
        #expect(throws: ImageError.self) { try ImageManifest.decode(wrong.encoded(), path: "m") }
    }

    /// A manifest written before imports existed (schema 1, no `imported`) still loads.
    @Test func aSchemaOneDebianManifestStillLoads() throws {
        var old = sampleManifest(digest: Self.digest)
        old.schema = 1
        let text = String(decoding: old.encoded(), as: UTF8.self)
        #expect(text.contains("\"schema\" : 1") && !text.contains("imported"))
        let decoded = try ImageManifest.decode(Array(text.utf8), path: "m")
        #expect(decoded.schema == 1 && decoded.kind == "debian" && decoded.imported == nil)
        old.schema = 3
        #expect(throws: ImageError.failed("image manifest m is damaged: schema 3, expected 1 to 2")) { try ImageManifest.decode(old.encoded(), path: "m") }
    }
}
