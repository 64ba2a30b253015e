import Glibc
import GuestDisks
import POSIX
import Testing

@Suite struct DiskMountParsingTests {
    @Test func namedDisksAreReadFromTheCommandLine() {
        let (mounts, problems) = DiskMount.parse(commandLine: ["console=ttyS0", "momin.disk=case-7:ro", "momin.disk=scratch_1:rw", "momin.doors"])
        #expect(mounts == [DiskMount(name: "case-7", writable: false), DiskMount(name: "scratch_1", writable: true)])
        #expect(problems.isEmpty)
        #expect(mounts.map(\.mountPoint) == ["/evidence/case-7", "/disks/scratch_1"])
    }

    @Test func evidenceIsMountedWriteBlockedAndWithoutItsJournal() {
        let evidence = DiskMount(name: "e", writable: false)
        #expect(evidence.flags == UInt(MS_RDONLY | MS_NODEV | MS_NOSUID | MS_NOEXEC))
        #expect(evidence.data == "noload")
        let scratch = DiskMount(name: "s", writable: true)
        #expect(scratch.flags & UInt(MS_RDONLY) == 0 && scratch.flags & UInt(MS_NODEV) != 0 && scratch.flags & UInt(MS_NOSUID) != 0)
    }

    @Test func theScratchDiskIsMountedReadWriteAtSlashScratchAndOnlyOnce() {
        let (mounts, problems) = DiskMount.parse(commandLine: ["momin.disk=momin-scratch:scratch", "momin.disk=other:scratch"])
        #expect(mounts == [DiskMount(name: "momin-scratch", writable: true, isScratch: true)])
        #expect(problems == ["momin.disk=other:scratch: a second scratch disk; the first is kept"])
        #expect(mounts.first?.mountPoint == "/scratch")
        #expect(mounts.first?.flags == UInt(MS_NODEV | MS_NOSUID) && mounts.first?.data == "")
    }

    @Test func malformedWordsAreSkippedWithAReason() {
        let words = ["momin.disk=", "momin.disk=a", "momin.disk=a:wo", "momin.disk=../x:ro", "momin.disk=-a:ro",
                     "momin.disk=\(String(repeating: "x", count: 21)):ro", "momin.disk=a:ro:rw", "momin.disk=a:ro", "momin.disk=a:rw"]
        let (mounts, problems) = DiskMount.parse(commandLine: words)
        #expect(mounts == [DiskMount(name: "a", writable: false)])
        #expect(problems.count == words.count - 1)
        #expect(problems.last == "momin.disk=a:rw: disk a is named twice; the first is kept")
        #expect(problems.first?.contains("expected momin.disk=NAME:ro, NAME:rw or NAME:scratch") == true)
        #expect(DiskMount.isValidName(String(repeating: "x", count: 20)))
    }
}

@Suite struct DiskSetupTests {
    /// A scratch tree: sys/block/vdX/serial files, an empty dev and root.
    final class Tree {
        let base: String
        init(serials: [String: String?]) throws {
            var template = Array("/tmp/momin-disks-XXXXXX".utf8CString)
            let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
            base = String(cString: try #require(made))
            for dir in ["sys/block", "dev", "root"] { try Self.mkdirs(base + "/" + dir) }
            for (device, serial) in serials {
                try Self.mkdirs(base + "/sys/block/" + device)
                if let serial {
                    let fd = open(base + "/sys/block/\(device)/serial", O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
                    defer { close(fd) }
                    try FileIO.writeAll(fd, Array((serial + "\n").utf8))
                }
            }
        }
        static func mkdirs(_ path: String) throws {
            var prefix = ""
            for part in path.split(separator: "/") {
                prefix += "/" + part
                if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw SystemError("mkdir", subject: prefix) }
            }
        }
        deinit { _ = system("rm -rf '\(base)'") }
    }

    @Test func serialsAreReadFromSysfs() throws {
        let tree = try Tree(serials: ["vda": "case-7", "vdb": nil, "vdc": "scratch", "vdd": "case-7", "sda": "other"])
        #expect(BlockDevices.bySerial(sysBlock: tree.base + "/sys/block") == ["case-7": "vda", "scratch": "vdc"])
    }

    @Test func eachAskedDiskIsMountedByItsSerialAndLinkedByID() throws {
        let tree = try Tree(serials: ["vda": "rootimg", "vdb": "case-7", "vdc": "scratch"])
        var calls: [String] = []
        let result = DiskSetup.run(commandLine: ["momin.disk=case-7:ro", "momin.disk=scratch:rw", "momin.disk=gone:ro"],
                                   sysBlock: tree.base + "/sys/block", dev: tree.base + "/dev", root: tree.base + "/root") { source, target, disk in
            calls.append("\(source) \(target) \(disk.flags) \(disk.data)")
            return 0
        }
        #expect(calls == [
            "\(tree.base)/dev/vdb \(tree.base)/root/evidence/case-7 \(UInt(MS_RDONLY | MS_NODEV | MS_NOSUID | MS_NOEXEC)) noload",
            "\(tree.base)/dev/vdc \(tree.base)/root/disks/scratch \(UInt(MS_NODEV | MS_NOSUID)) ",
        ])
        #expect(result.mounted == ["case-7 vdb /evidence/case-7 ro", "scratch vdc /disks/scratch rw"])
        #expect(result.problems == ["disk gone: no virtio disk has that serial"])
        var target = [CChar](repeating: 0, count: 256)
        let n = readlink(tree.base + "/dev/disk/by-id/virtio-case-7", &target, 255)
        #expect(n > 0 && String(decoding: target.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "../../vdb")
        // A link for every disk with a serial, mounted or not (here it dangles: no /dev/vda).
        var info = stat()
        #expect(lstat(tree.base + "/dev/disk/by-id/virtio-rootimg", &info) == 0)
    }

    @Test func aFailedMountIsReportedAndTheRestGoOn() throws {
        let tree = try Tree(serials: ["vda": "a", "vdb": "b"])
        let result = DiskSetup.run(commandLine: ["momin.disk=a:ro", "momin.disk=b:ro"], sysBlock: tree.base + "/sys/block",
                                   dev: tree.base + "/dev", root: tree.base + "/root") { _, target, _ in
            if target.hasSuffix("/a") { errno = EINVAL; return -1 }
            return 0
        }
        #expect(result.mounted == ["b vdb /evidence/b ro"])
        #expect(result.problems.count == 1 && result.problems[0].hasPrefix("mount \(tree.base)/dev/vda (a) on /evidence/a: "))
    }
}
