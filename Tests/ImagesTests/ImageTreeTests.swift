import Foundation
import Glibc
@testable import Images
import Testing

@Suite struct ImageTreeTests {
    @Test func timesAreClampedAndTheTreeIsCounted() throws {
        let scratch = try Scratch()
        let root = scratch.path + "/root"
        try scratch.write("root/etc/debian_version", "12.11\n")
        try scratch.write("root/usr/bin/big", String(repeating: "x", count: 10_000))
        try scratch.write("root/usr/bin/old", "old")
        #expect(link(root + "/usr/bin/big", root + "/usr/bin/big-link") == 0)
        #expect(symlink("big", root + "/usr/bin/short") == 0)
        #expect(symlink(String(repeating: "l", count: 100), root + "/usr/bin/long") == 0)
        var old = [timespec(tv_sec: 1_000_000, tv_nsec: 5), timespec(tv_sec: 1_000_000, tv_nsec: 5)]
        #expect(utimensat(AT_FDCWD, root + "/usr/bin/old", &old, 0) == 0)

        let epoch = 1_686_355_200
        let tally = try ImageTree.clampAndTally(root, epoch: epoch)
        // root, etc, usr, usr/bin; debian_version, big (twice linked, once counted), old, short, long.
        #expect(tally.inodes == 9)
        // Directories 1 block each; debian_version 1, big 3, old 1, the long link 1.
        #expect(tally.blocks == 4 + 1 + 3 + 1 + 1)
        for path in ["", "/etc", "/etc/debian_version", "/usr/bin", "/usr/bin/big", "/usr/bin/short", "/usr/bin/long"] {
            var info = stat()
            #expect(lstat(root + path, &info) == 0)
            #expect(info.st_mtim.tv_sec == epoch && info.st_mtim.tv_nsec == 0, "\(path)")
            #expect(info.st_atim.tv_sec == epoch && info.st_atim.tv_nsec == 0, "\(path)")
        }
        // Older times stay, without their fraction; a symlink's own time changes, not its target's.
        var info = stat()
        #expect(lstat(root + "/usr/bin/old", &info) == 0)
        #expect(info.st_mtim.tv_sec == 1_000_000 && info.st_mtim.tv_nsec == 0)
    }

    @Test func tidyingRemovesHostFilesAndEmptiesCaches() throws {
        let scratch = try Scratch()
        for file in ["etc/resolv.conf", "etc/hostname", "etc/machine-id", "var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease",
                     "var/lib/apt/lists/partial/x", "var/cache/apt/archives/jq.deb", "tmp/partial/y", "var/cache/apt/pkgcache.bin", "tmp/a/b",
                     "var/cache/debconf/config.dat-old", "var/log/dpkg.log", "etc/passwd"] {
            try scratch.write("root/" + file, "x")
        }
        try ImageTree.tidy(scratch.path + "/root")
        #expect(try ImageTree.entries(scratch.path + "/root/etc") == ["passwd"])
        #expect(try ImageTree.entries(scratch.path + "/root/var/lib/apt/lists") == ["partial"])
        #expect(try ImageTree.entries(scratch.path + "/root/var/lib/apt/lists/partial") == [])
        #expect(try ImageTree.entries(scratch.path + "/root/var/cache/apt") == ["archives"])
        #expect(try ImageTree.entries(scratch.path + "/root/var/cache/apt/archives") == [])
        #expect(try ImageTree.entries(scratch.path + "/root/tmp") == [])
        #expect(!scratch.exists("root/var/log/dpkg.log"))
        #expect(!scratch.exists("root/var/cache/debconf/config.dat-old"))
    }

    @Test func removalNeverFollowsSymlinks() throws {
        let scratch = try Scratch()
        try scratch.write("outside/keep", "keep")
        try scratch.write("tree/a/b", "b")
        #expect(symlink(scratch.path + "/outside", scratch.path + "/tree/a/link") == 0)
        #expect(try ImageTree.remove(scratch.path + "/tree").isEmpty)
        #expect(!scratch.exists("tree"))
        #expect(scratch.exists("outside/keep"))
    }

    @Test func mountinfoEscapesAreRead() {
        #expect("/tmp/a\\040b".replacingOctalEscapes() == "/tmp/a b")
        #expect("/x\\134y\\011".replacingOctalEscapes() == "/x\\y\t")
        #expect("/plain\\04".replacingOctalEscapes() == "/plain\\04")
        #expect(ImageTree.mounts(under: "/proc").contains("/proc"))
        #expect(ImageTree.mounts(under: "/nonexistent-momin-path").isEmpty)
    }
}
