import Foundation
import Glibc
@testable import Images

/// A private directory under /tmp, removed when the value goes.
final class Scratch {
    let path: String

    init() throws {
        var template = Array("/tmp/momin-images-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ImageError.failed("mkdtemp: \(errno)") }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ relative: String, _ text: String) throws {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: false, encoding: .utf8)
    }

    func exists(_ relative: String) -> Bool { access(path + "/" + relative, F_OK) == 0 }
}

let fixedTools = ToolVersions(mmdebstrap: "1.3.5", e2fsprogs: "1.47.0")

/// A manifest for an image whose file holds `content`, as the builder would write it.
func sampleManifest(digest: ImageDigest, name: String = "debian", key: String = String(repeating: "a", count: 64),
                    builtAt: String = "2026-12-06T18:00:00Z") -> ImageManifest {
    ImageManifest(digest: digest, name: name, suite: "bookworm", variant: "minbase", architecture: "amd64",
                  sources: DebianImageRequest().sources, requested: ["jq"],
                  packages: [ImagePackage(name: "base-files", version: "12.4+deb12u11", architecture: "amd64"),
                             ImagePackage(name: "jq", version: "1.6-2.1+deb12u3", architecture: "amd64")],
                  tools: fixedTools, sourceDateEpoch: DebianImageRequest.sourceDateEpoch, filesystemUUID: "0b8f8a3e-0000-4000-8000-000000000000",
                  sizeBytes: 64 << 20, treeBytes: 40 << 20, inodes: 1200, builtAt: builtAt, buildSeconds: 42.5, inputsKey: key)
}

/// Puts a fake image holding `content` into `store`'s tmp/ as a build would, then adds it.
@discardableResult
func addImage(_ store: ImageStore, content: String, name: String, key: String = String(repeating: "a", count: 64),
              builtAt: String = "2026-12-06T18:00:00Z") throws -> ImageManifest {
    let directory = try store.makeBuildDirectory()
    let file = directory + "/image.ext4"
    try content.write(toFile: file, atomically: false, encoding: .utf8)
    let manifest = sampleManifest(digest: try ImageDigest.ofFile(file), name: name, key: key, builtAt: builtAt)
    try store.add(image: file, manifest: manifest, name: name)
    store.removeBuildDirectory(directory)
    return manifest
}
