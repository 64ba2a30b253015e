import Foundation
import Glibc
@testable import Images
import Testing

@Suite struct ImageStoreTests {
    @Test func anAddedImageLiesUnderItsDigestReadOnlyWithItsManifestAndName() throws {
        let scratch = try Scratch()
        let store = ImageStore(root: scratch.path + "/images")
        let manifest = try addImage(store, content: "image one", name: "debian")
        let digest = manifest.imageDigest
        #expect(digest == ImageDigest(sha256Hex("image one")))
        var info = stat()
        #expect(stat(store.imagePath(digest), &info) == 0)
        #expect(info.st_mode & 0o777 == 0o444)
        #expect(try store.manifest(digest) == manifest)
        #expect(try store.names() == ["debian": digest])
        #expect(try store.resolve("debian") == digest)
        #expect(try store.resolve(digest.description) == digest)
        #expect(try store.resolve(String(digest.hex.prefix(6)).uppercased()) == digest)
        // Nothing is left beside them: no temporary files, no build directory.
        #expect(try ImageTree.entries(store.root + "/sha256") == [digest.hex + ".ext4", digest.hex + ".json"])
        #expect(try ImageTree.entries(store.root + "/tmp") == [])
        #expect(try ImageTree.entries(store.root).sorted() == ["lock", "names.json", "sha256", "tmp"])
    }

    @Test func theSameInputsKeyFindsTheImageAgainAndANewNameCanShareIt() throws {
        let scratch = try Scratch()
        let store = ImageStore(root: scratch.path + "/images")
        let key = String(repeating: "b", count: 64)
        let first = try addImage(store, content: "bytes", name: "debian", key: key)
        #expect(store.reusable(inputsKey: key) == first)
        #expect(store.reusable(inputsKey: String(repeating: "c", count: 64)) == nil)
        try store.setName("triage", to: first.imageDigest)
        #expect(try store.names() == ["debian": first.imageDigest, "triage": first.imageDigest])
        // An image whose file went missing is not reused.
        chmod(store.imagesDirectory, 0o755)
        unlink(store.imagePath(first.imageDigest))
        #expect(store.reusable(inputsKey: key) == nil)
    }

    @Test func aRebuildWithEqualBytesKeepsOneFileAndTheNewerManifest() throws {
        let scratch = try Scratch()
        let store = ImageStore(root: scratch.path + "/images")
        try addImage(store, content: "same", name: "debian", builtAt: "2026-12-06T18:00:00Z")
        let second = try addImage(store, content: "same", name: "debian", builtAt: "2026-12-06T19:00:00Z")
        #expect(store.list().images == [second])
        #expect(try ImageTree.entries(store.imagesDirectory).count == 2)
    }

    @Test func aNameMovesToTheNewImageAndTheOldOneIsListedUnnamed() throws {
        let scratch = try Scratch()
        let store = ImageStore(root: scratch.path + "/images")
        let old = try addImage(store, content: "old", name: "debian")
        let new = try addImage(store, content: "new", name: "debian", key: String(repeating: "d", count: 64))
        #expect(try store.names() == ["debian": new.imageDigest])
        #expect(Set(store.list().images.map(\.digest)) == [old.digest, new.digest])
    }

    @Test func removingANameKeepsAnImageAnotherNameHolds() throws {
        let scratch = try Scratch()
        let store = ImageStore(root: scratch.path + "/images")
        let manifest = try addImage(store, content: "shared", name: "a")
        try store.setName("b", to: manifest.imageDigest)
        #expect(try store.remove("a", force: false) == .unnamed("a", manifest.imageDigest, stillNamedBy: ["b"]))
        #expect(access(store.imagePath(manifest.imageDigest), F_OK) == 0)
        #expect(try store.remove("b", force: false) == .removed(manifest.imageDigest, names: ["b"]))
        #expect(access(store.imagePath(manifest.imageDigest), F_OK) != 0)
        #expect(access(store.manifestPath(manifest.imageDigest), F_OK) != 0)
        #expect(try store.names().isEmpty)
    }

    @Test func removingByDigestIsRefusedWhileNamedUnlessForced() throws {
        let scratch = try Scratch()
        let store = ImageStore(root: scratch.path + "/images")
        let manifest = try addImage(store, content: "named", name: "a")
        try store.setName("b", to: manifest.imageDigest)
        let digest = manifest.imageDigest
        do {
            _ = try store.remove(digest.short, force: false)
            Issue.record("removed a named image by digest")
        } catch {
            #expect(error.kind == .badInput)
            #expect(error.message == "image \(digest.short) is named a, b: remove the names, or give --force to remove them with it")
        }
        #expect(access(store.imagePath(digest), F_OK) == 0)
        #expect(try store.remove(digest.description, force: true) == .removed(digest, names: ["a", "b"]))
        #expect(try store.names().isEmpty)
        #expect(store.list().images.isEmpty)
        // An image no name points at any more goes by digest without --force.
        let loose = try addImage(store, content: "loose", name: "c")
        let newer = try addImage(store, content: "newer", name: "c", key: String(repeating: "f", count: 64))
        #expect(try store.remove(loose.imageDigest.hex, force: false) == .removed(loose.imageDigest, names: []))
        #expect(store.list().images == [newer])
    }

    @Test func unknownAndAmbiguousReferencesAreBadInput() throws {
        let scratch = try Scratch()
        let store = ImageStore(root: scratch.path + "/images")
        try addImage(store, content: "x", name: "x")
        for reference in ["nosuch", "abc", "0000000000"] {
            #expect(throws: ImageError.self) { try store.resolve(reference) }
            do { _ = try store.resolve(reference) } catch { #expect(error.kind == .badInput) }
        }
        // Two contents whose digests share their first 4 hex digits (a few hundred tries).
        var seen: [String: String] = [:]
        var pair: (String, String)?
        for counter in 0..<100_000 where pair == nil {
            let text = "content \(counter)"
            let prefix = String(sha256Hex(text).prefix(4))
            if let other = seen[prefix] { pair = (other, text) } else { seen[prefix] = text }
        }
        let (first, second) = try #require(pair)
        try addImage(store, content: first, name: "first")
        try addImage(store, content: second, name: "second")
        let prefix = String(sha256Hex(first).prefix(4))
        #expect(throws: ImageError.badInput("digest prefix \(prefix) is ambiguous: \([sha256Hex(first), sha256Hex(second)].sorted().map { String($0.prefix(12)) }.joined(separator: ", "))")) {
            try store.resolve(prefix)
        }
        #expect(try store.resolve(String(sha256Hex(first).prefix(12))) == ImageDigest(sha256Hex(first)))
    }

    @Test func damagedManifestsAreRefusedWithTheReason() throws {
        let scratch = try Scratch()
        let store = ImageStore(root: scratch.path + "/images")
        let manifest = try addImage(store, content: "z", name: "z")
        let path = store.manifestPath(manifest.imageDigest)
        let whole = manifest.encoded()
        let cases: [([UInt8], String)] = [
            (Array(whole.prefix(whole.count / 2)), "not valid JSON (truncated or corrupt)"),
            (Array("{}".utf8), "field schema is missing"),
            ([UInt8](repeating: 0x20, count: ImageManifest.byteLimit + 1), "over 1048576 bytes"),
            (Array(String(decoding: whole, as: UTF8.self).replacingOccurrences(of: "\"schema\" : 2", with: "\"schema\" : 9").utf8), "schema 9, expected 1 to 2"),
            (Array(String(decoding: whole, as: UTF8.self).replacingOccurrences(of: "\"sizeBytes\" : 67108864", with: "\"sizeBytes\" : \"big\"").utf8),
             "field sizeBytes has the wrong type"),
        ]
        for (bytes, reason) in cases {
            try ImageStore.writeAtomically(path, bytes)
            do {
                _ = try store.manifest(manifest.imageDigest)
                Issue.record("accepted a damaged manifest: \(reason)")
            } catch {
                #expect(error.kind == .failed)
                #expect(error.message == "image manifest \(path) is damaged: \(reason)")
            }
            let listed = store.list()
            #expect(listed.images.isEmpty)
            #expect(listed.damaged.count == 1)
        }
        // A manifest that describes another image than its file name says.
        var other = manifest
        other.digest = "sha256:" + String(repeating: "e", count: 64)
        try ImageStore.writeAtomically(path, other.encoded())
        #expect(throws: ImageError.failed("image manifest \(path) is damaged: it describes \(other.digest)")) { try store.manifest(manifest.imageDigest) }
    }

    @Test func aDamagedNameIndexIsRefused() throws {
        let scratch = try Scratch()
        let store = ImageStore(root: scratch.path + "/images")
        try addImage(store, content: "n", name: "n")
        for (text, reason) in [("{\"names\": {\"n\": \"sha256:12\"}, \"schema\": 1}", "n points at 'sha256:12', not sha256:<64 hex digits>"),
                               ("{\"names\": {", "not valid JSON (truncated or corrupt)"),
                               ("{\"names\": {\"../x\": \"sha256:\(String(repeating: "0", count: 64))\"}, \"schema\": 1}",
                                "image name '../x' is invalid: use 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit")] {
            try ImageStore.writeAtomically(store.namesPath, Array(text.utf8))
            #expect(throws: ImageError.failed("image index \(store.namesPath) is damaged: \(reason)")) { try store.names() }
        }
    }

    @Test func abandonedBuildDirectoriesAreRemovedLiveOnesKept() throws {
        let scratch = try Scratch()
        let store = ImageStore(root: scratch.path + "/images")
        let mine = try store.makeBuildDirectory()
        let dead = store.root + "/tmp/999999999-0"
        try FileManager.default.createDirectory(atPath: dead + "/root/etc", withIntermediateDirectories: true)
        try "x".write(toFile: dead + "/root/etc/x", atomically: false, encoding: .utf8)
        #expect(store.removeAbandonedBuilds().isEmpty)
        #expect(access(dead, F_OK) != 0)
        #expect(access(mine, F_OK) == 0)
    }

    @Test func theDefaultRootFollowsMominCache() {
        #expect(ImageStore.defaultRoot(environment: ["MOMIN_CACHE": "/c", "HOME": "/h"]) == "/c/images")
        #expect(ImageStore.defaultRoot(environment: ["HOME": "/h"]) == "/h/.cache/momin/images")
        #expect(ImageStore.defaultRoot(environment: ["MOMIN_CACHE": "", "HOME": "/h"]) == "/h/.cache/momin/images")
    }
}
