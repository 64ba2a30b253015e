import Foundation
import Glibc
@testable import Images
import Testing

/// Layers applied to a staging directory: the OCI layer rules, and every hostile entry refused
/// or neutralised without anything outside the tree changing.
@Suite struct LayerApplierTests {
    /// `layers` applied in order to scratch's root/; the applier, for its counts.
    @discardableResult
    static func apply(_ scratch: Scratch, _ layers: [TarWriter]) throws(LayerError) -> LayerApplier {
        mkdir(scratch.path + "/root", 0o755)
        let applier: LayerApplier
        do { applier = try LayerApplier(root: scratch.path + "/root", applyOwnership: geteuid() == 0) } catch { throw .failed(error.message) }
        for var layer in layers {
            var reader = TarReader(MemorySource(layer.finish()))
            try applier.apply(&reader)
        }
        return applier
    }

    static func text(_ scratch: Scratch, _ path: String) -> String? {
        (try? String(contentsOfFile: scratch.path + "/root/" + path, encoding: .utf8))
    }

    @Test func whiteoutsAndOpaqueDirectoriesDeleteOnlyWhatIsBelow() throws {
        let scratch = try Scratch()
        var lower = TarWriter()
        lower.add("etc/", type: "5", mode: 0o755)
        lower.add("etc/keep", data: Array("keep".utf8))
        lower.add("etc/gone", data: Array("gone".utf8))
        lower.add("opt/", type: "5")
        lower.add("opt/old/", type: "5")
        lower.add("opt/old/file", data: [1])
        lower.add("opt/sub/old", data: [1])
        var upper = TarWriter()
        upper.add("etc/.wh.gone")
        upper.add("opt/new", data: Array("new".utf8))
        upper.add("opt/sub/fresh", data: [2])
        // The opaque marker after its siblings: what this layer added stays.
        upper.add("opt/.wh..wh..opq")
        upper.add("etc/.wh.never-there")
        try Self.apply(scratch, [lower, upper])
        #expect(Self.text(scratch, "etc/keep") == "keep")
        #expect(!scratch.exists("root/etc/gone") && !scratch.exists("root/etc/.wh.gone"))
        #expect(try ImageTree.entries(scratch.path + "/root/opt") == ["new", "sub"])
        #expect(try ImageTree.entries(scratch.path + "/root/opt/sub") == ["fresh"])
        #expect(!scratch.exists("root/opt/.wh..wh..opq"))
    }

    @Test func laterLayersReplaceEntries() throws {
        let scratch = try Scratch()
        var lower = TarWriter()
        lower.add("a/", type: "5")
        lower.add("a/x", data: [1])
        lower.add("f", data: [1])
        var upper = TarWriter()
        upper.add("a", data: Array("file now".utf8))
        upper.add("f", type: "2", link: "/etc/shadow")
        try Self.apply(scratch, [lower, upper])
        #expect(Self.text(scratch, "a") == "file now")
        var info = stat()
        #expect(lstat(scratch.path + "/root/f", &info) == 0 && info.st_mode & S_IFMT == S_IFLNK)
    }

    @Test func writesThroughASymlinkAreRefused() throws {
        let scratch = try Scratch()
        try scratch.write("outside/secret", "secret")
        // In the same layer.
        var same = TarWriter()
        same.add("escape", type: "2", link: scratch.path + "/outside")
        same.add("escape/secret", data: Array("owned".utf8))
        #expect(throws: LayerError.refused(TarError(entry: "escape/secret", offset: 512, .throughSymlink("escape")))) {
            try Self.apply(scratch, [same])
        }
        // From an earlier layer, relative, and a whiteout through it.
        let second = try Scratch()
        try second.write("outside/secret", "secret")
        var lower = TarWriter()
        lower.add("up", type: "2", link: "../outside")
        var upper = TarWriter()
        upper.add("up/.wh.secret")
        #expect(throws: LayerError.self) { try Self.apply(second, [lower, upper]) }
        #expect((try? String(contentsOfFile: scratch.path + "/outside/secret", encoding: .utf8)) == "secret")
        #expect((try? String(contentsOfFile: second.path + "/outside/secret", encoding: .utf8)) == "secret")
        // A file where a directory is needed.
        let third = try Scratch()
        var files = TarWriter()
        files.add("f", data: [1])
        files.add("f/x", data: [1])
        #expect(throws: LayerError.refused(TarError(entry: "f/x", offset: 1024, .throughSymlink("f")))) { try Self.apply(third, [files]) }
    }

    @Test func dotDotIsRefusedAndAbsolutePathsStayInside() throws {
        let scratch = try Scratch()
        var tar = TarWriter()
        tar.add("a/../../x", data: [1])
        #expect(throws: LayerError.refused(TarError(entry: "a/../../x", offset: 0, .badPath("it has a '..' component")))) {
            try Self.apply(scratch, [tar])
        }
        #expect(!scratch.exists("x"))
        let second = try Scratch()
        var absolute = TarWriter()
        absolute.add(second.path + "/planted", data: [1])
        let applier = try Self.apply(second, [absolute])
        #expect(!scratch.exists("planted") && !second.exists("planted"))
        #expect(second.exists("root" + second.path + "/planted"))
        #expect(applier.neutralised.absolutePaths == 1)
    }

    @Test func hardLinksOnlyReachFilesInTheTree() throws {
        let scratch = try Scratch()
        var tar = TarWriter()
        tar.add("bin/", type: "5")
        tar.add("bin/a", data: Array("a".utf8))
        tar.add("bin/b", type: "1", link: "bin/a")
        try Self.apply(scratch, [tar])
        var a = stat(), b = stat()
        #expect(lstat(scratch.path + "/root/bin/a", &a) == 0 && lstat(scratch.path + "/root/bin/b", &b) == 0 && a.st_ino == b.st_ino)

        for (target, why) in [("/etc/passwd", "its target etc/passwd is not in the tree"), ("../../etc/passwd", "target it has a '..' component"),
                              ("bin", "its target is a directory")] {
            let other = try Scratch()
            var bad = TarWriter()
            bad.add("bin/", type: "5")
            bad.add("x", type: "1", link: target)
            #expect(throws: LayerError.refused(TarError(entry: "x", offset: 512, .badHardLink(why)))) { try Self.apply(other, [bad]) }
        }
        // Through a symlink to the host's /etc.
        let linked = try Scratch()
        var through = TarWriter()
        through.add("etc", type: "2", link: "/etc")
        through.add("x", type: "1", link: "etc/passwd")
        #expect(throws: LayerError.refused(TarError(entry: "x", offset: 512, .badHardLink("its target's path goes through a symlink")))) {
            try Self.apply(linked, [through])
        }
    }

    @Test func devicesAreDroppedAndSetIDBitsCleared() throws {
        let scratch = try Scratch()
        var tar = TarWriter()
        tar.add("dev/sda", type: "4")
        tar.add("dev/null", type: "3")
        tar.add("run/pipe", type: "6")
        tar.add("bin/su", data: [1], mode: 0o4755, uid: 0, gid: 0)
        tar.add("bin/wall", data: [1], mode: 0o2755, gid: 5)
        tar.add("var/mail/", type: "5", mode: 0o2775, gid: 8)
        let applier = try Self.apply(scratch, [tar])
        #expect(applier.neutralised.deviceNodes == 2 && applier.neutralised.fifos == 1 && applier.neutralised.setIDBits == 2)
        #expect(!scratch.exists("root/dev/sda") && !scratch.exists("root/dev/null") && !scratch.exists("root/run/pipe"))
        var info = stat()
        #expect(lstat(scratch.path + "/root/bin/su", &info) == 0 && info.st_mode & 0o7777 == 0o755)
        #expect(lstat(scratch.path + "/root/bin/wall", &info) == 0 && info.st_mode & 0o7777 == 0o755)
        #expect(lstat(scratch.path + "/root/var/mail", &info) == 0 && info.st_mode & 0o7777 == 0o2775)
        if geteuid() == 0 { #expect(info.st_gid == 8) }
    }

    @Test func tidyingAnImportedTreeNeverLeavesIt() throws {
        let scratch = try Scratch()
        try scratch.write("host/etc/hostname", "host")
        try scratch.write("host/var/lib/apt/lists/x", "x")
        try scratch.write("tree/placeholder", "")
        #expect(symlink(scratch.path + "/host/etc", scratch.path + "/tree/etc") == 0)
        #expect(symlink(scratch.path + "/host/var", scratch.path + "/tree/var") == 0)
        try ImageTree.tidy(scratch.path + "/tree")
        #expect(scratch.exists("host/etc/hostname") && scratch.exists("host/var/lib/apt/lists/x"))
    }
}
