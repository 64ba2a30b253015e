import Agents
import Audit
import Crypto
import Foundation
import Glibc
import Host
import Merkle
import Policy
import Testing

@Suite struct DiskRequestTests {
    @Test func theOptionIsReadFromItsEnd() throws {
        #expect(try DiskRequest.parse("a.img") == DiskRequest(path: "a.img"))
        #expect(try DiskRequest.parse("/e/a.img:ro") == DiskRequest(path: "/e/a.img"))
        #expect(try DiskRequest.parse("/e/a.img:rw") == DiskRequest(path: "/e/a.img", writable: true))
        #expect(try DiskRequest.parse("/e/a.img:ro,name=case-7") == DiskRequest(path: "/e/a.img", name: "case-7"))
        #expect(try DiskRequest.parse("/e/a.img,name=x") == DiskRequest(path: "/e/a.img", name: "x"))
        // A path may hold ':' and ','; only the known suffixes are options.
        #expect(try DiskRequest.parse("/e/a:b,c.img:rw,name=n") == DiskRequest(path: "/e/a:b,c.img", writable: true, name: "n"))
        #expect(try DiskRequest.parse("/e/a.img:rx") == DiskRequest(path: "/e/a.img:rx"))
        // Rate limits, in any order after the mode.
        var limited = DiskRequest(path: "/e/a.img", writable: true, name: "s")
        limited.bytesPerSecond = 1_048_576
        limited.operationsPerSecond = 100
        #expect(try DiskRequest.parse("/e/a.img:rw,iops=100,name=s,bps=1048576") == limited)
        #expect(try DiskRequest.parse("/e/a.img:rw").mountWord == nil)
        #expect(try DiskRequest.parse("/e/a.img:rw,name=s").mountWord == "momin.disk=s:rw")
        #expect(try DiskRequest.parse("/e/a.img,name=e").mountWord == "momin.disk=e:ro")
    }

    @Test func theRootImageHasItsOwnSerialAndKernelParameter() throws {
        let root = DiskRequest.rootImage("/images/debian.ext4")
        #expect(root.isRoot && !root.writable && root.name == "momin-root")
        #expect(root.mountWord == "momin.root=momin-root")
        #expect(throws: HostError.badInput("--disk /x,name=momin-root: the name momin-root is the root image's (--image)")) {
            try DiskRequest.parse("/x,name=momin-root")
        }
        for size in ["256m", "1g", "50%", "4096", "64K"] { try DiskRequest.checkOverlaySize(size) }
        for size in ["", "0", "1t", "1g,mode=4777", "-5m", "%"] {
            #expect(throws: HostError.badInput("--overlay \(size): expected a size such as 256m, 1g or 50% (of the VM's memory)")) {
                try DiskRequest.checkOverlaySize(size)
            }
        }
    }

    @Test func badValuesNameWhatIsWrong() {
        for (text, message) in [
            (":rw", "--disk :rw: no path (expected PATH[:ro|:rw][,name=N])"),
            ("a.img,name=", "--disk a.img,name=: name '' is not 1 to 20 of A-Z a-z 0-9 . _ -, starting with a letter or digit"),
            ("a.img,name=../x", "--disk a.img,name=../x: name '../x' is not 1 to 20 of A-Z a-z 0-9 . _ -, starting with a letter or digit"),
            ("a.img,name=\(String(repeating: "n", count: 21))", "is not 1 to 20"),
            ("a.img,bps=0", "--disk a.img,bps=0: bps=0 is not a whole number of at least 1"),
            ("a.img,iops=+5", "iops=+5 is not a whole number of at least 1"),
            ("a.img,name=a,name=b", "--disk a.img,name=a,name=b: name= is given twice"),
        ] {
            #expect(throws: HostError.self) { try DiskRequest.parse(text) }
            do { _ = try DiskRequest.parse(text) } catch {
                #expect(error.kind == .badInput)
                #expect(error.message.contains(message), "\(error.message)")
            }
        }
    }

    @Test func aVMHasAtMostEightDisksWithUniqueNames() throws {
        try DiskRequest.checkSet((0..<8).map { DiskRequest(path: "/d\($0)", name: "d\($0)") })
        #expect(throws: HostError.badInput("9 disks: a VM may have at most 8")) {
            try DiskRequest.checkSet((0..<9).map { DiskRequest(path: "/d\($0)") })
        }
        #expect(throws: HostError.badInput("--disk: name e is given to two disks")) {
            try DiskRequest.checkSet([DiskRequest(path: "/a", name: "e"), DiskRequest(path: "/b"), DiskRequest(path: "/c", name: "e")])
        }
    }
}

@Suite struct AttachedDiskTests {
    /// A folder with disk files: `good.img` (8 KiB of a pattern), odd sizes, a folder, a link.
    final class Folder {
        let path: String
        let content = (0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        init() throws {
            var template = Array("/tmp/momin-disks-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw HostError.failed("mkdtemp") }
            path = String(cString: made)
            try Data(content).write(to: URL(fileURLWithPath: path + "/good.img"))
            try Data(count: 1000).write(to: URL(fileURLWithPath: path + "/odd.img"))
            try Data().write(to: URL(fileURLWithPath: path + "/empty.img"))
            try FileManager.default.createDirectory(atPath: path + "/dir.img", withIntermediateDirectories: false)
            try FileManager.default.createDirectory(atPath: path + "/allowed", withIntermediateDirectories: false)
            try Data(content).write(to: URL(fileURLWithPath: path + "/allowed/ok.img"))
            try FileManager.default.createSymbolicLink(atPath: path + "/allowed/link.img", withDestinationPath: path + "/good.img")
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    static func refusal(_ request: DiskRequest, policy: AgentPolicy? = nil) -> HostError? {
        do {
            _ = try AttachedDisk.open(request, policy: policy)
            return nil
        } catch { return error }
    }

    @Test func aDiskIsOpenedWithItsModeAndIdentifiedByItsBytes() throws {
        let folder = try Folder()
        let disk = try AttachedDisk.open(DiskRequest(path: folder.path + "/good.img", name: "e"), policy: nil)
        #expect(disk.size == 8192 && disk.path == folder.path + "/good.img")
        #expect(disk.attachDigest == MerkleHash(bytes: Array(SHA256.hash(data: folder.content))))
        #expect(fcntl(disk.fd, F_GETFL) & O_ACCMODE == O_RDONLY)
        #expect(fcntl(disk.fd, F_GETFD) & FD_CLOEXEC != 0)
        #expect(disk.identity.hasPrefix("dev 0x") && disk.identity.contains(" ino ") && disk.identity.contains(" mtime "))
        let state = disk.state(vm: "v", digest: disk.attachDigest)
        #expect(state.name == "e" && !state.writable && state.size == 8192 && state.sha256 == disk.attachDigest)
        let rw = try AttachedDisk.open(DiskRequest(path: folder.path + "/allowed/ok.img", writable: true), policy: nil)
        #expect(fcntl(rw.fd, F_GETFL) & O_ACCMODE == O_RDWR)
        // A disk over the digest limit is recorded by identity only.
        disk.close()
        #expect(try AttachedDisk.open(DiskRequest(path: folder.path + "/good.img"), policy: nil, digestLimit: 4096).attachDigest == nil)
    }

    @Test func filesThatAreNotDisksAreRefusedByName() throws {
        let folder = try Folder()
        let cases: [(String, String)] = [
            ("odd.img", "is 1000 bytes; a disk is a whole number of 512-byte sectors, at least one"),
            ("empty.img", "is 0 bytes"),
            ("dir.img", "is not a regular file or block device"),
            ("missing.img", "No such file or directory"),
        ]
        for (name, message) in cases {
            let error = Self.refusal(DiskRequest(path: folder.path + "/" + name))
            #expect(error?.kind == .badInput, "\(name)")
            #expect(error?.message.hasPrefix("--disk \(folder.path)/\(name): ") == true, "\(String(describing: error))")
            #expect(error?.message.contains(message) == true, "\(name): \(String(describing: error))")
        }
        // A character device is no disk either (block devices are; the rig attaches one).
        #expect(Self.refusal(DiskRequest(path: "/dev/null"))?.message == "--disk /dev/null: /dev/null is not a regular file or block device")
    }

    @Test func thePolicyJudgesThePathAndWhereItLeads() throws {
        let folder = try Folder()
        let policy = try AgentPolicy.parse("""
            version: 1
            agent: t
            resources:
              disks:
                - path: \(folder.path)/allowed/*.img
            """, format: .yaml, file: "t.yaml")
        #expect(try AttachedDisk.open(DiskRequest(path: folder.path + "/allowed/ok.img"), policy: policy).size == 8192)
        let rw = Self.refusal(DiskRequest(path: folder.path + "/allowed/ok.img", writable: true), policy: policy)
        #expect(rw?.message.contains("refused by the policy: deny resources.disks: \(folder.path)/allowed/ok.img is not within any of resources.disks with mode rw") == true,
                "\(String(describing: rw))")
        let outside = Self.refusal(DiskRequest(path: folder.path + "/good.img"), policy: policy)
        #expect(outside?.message.contains("is not within any of resources.disks") == true)
        // The link lies in the allowed folder and leads out of it.
        let link = Self.refusal(DiskRequest(path: folder.path + "/allowed/link.img"), policy: policy)
        #expect(link?.message.contains("resolves to \(folder.path)/good.img, which is not attachable") == true, "\(String(describing: link))")
        #expect(Self.refusal(DiskRequest(path: folder.path + "/allowed/ok.img"), policy: try AgentPolicy.parse("version: 1\nagent: t\n", format: .yaml, file: "t.yaml"))?
            .message.contains("the policy allows no disks") == true)
    }

    @Test func aReadWriteDiskIsOneVMsAlone() throws {
        let folder = try Folder()
        let path = folder.path + "/good.img"
        let writer = try AttachedDisk.open(DiskRequest(path: path, writable: true), policy: nil)
        #expect(Self.refusal(DiskRequest(path: path, writable: true))?.message.contains("is attached to another VM") == true)
        #expect(Self.refusal(DiskRequest(path: path))?.message.contains("is attached read-write to another VM") == true)
        writer.close()
        let reader1 = try AttachedDisk.open(DiskRequest(path: path), policy: nil)
        let reader2 = try AttachedDisk.open(DiskRequest(path: path), policy: nil)
        #expect(reader1.fd != reader2.fd)
        #expect(Self.refusal(DiskRequest(path: path, writable: true))?.message.contains("is attached to another VM") == true)
    }

    @Test func aWrittenDiskHasANewDigestAtDetach() throws {
        let folder = try Folder()
        let disk = try AttachedDisk.open(DiskRequest(path: folder.path + "/good.img", writable: true), policy: nil)
        #expect(pwrite(disk.fd, [UInt8]([0xff, 0xfe]), 2, 100) == 2)
        var changed = folder.content
        changed[100] = 0xff
        changed[101] = 0xfe
        #expect(try disk.detachDigest() == MerkleHash(bytes: Array(SHA256.hash(data: changed))))
        #expect(try disk.detachDigest() != disk.attachDigest)
    }
}

@Suite struct ScratchDiskTests {
    @Test func theScratchDiskHasItsOwnSerialAndMountWord() throws {
        let scratch = DiskRequest.scratch("/data/scratch/v.ext4")
        #expect(scratch.isScratch && scratch.writable && scratch.name == "momin-scratch")
        #expect(scratch.mountWord == "momin.disk=momin-scratch:scratch")
        #expect(throws: HostError.badInput("--disk /x,name=momin-scratch: the name momin-scratch is the scratch disk's (--scratch)")) {
            try DiskRequest.parse("/x,name=momin-scratch")
        }
    }

    @Test func aScratchDiskIsMadeOnceAsSparseExt4AndKeptUntilRemoved() throws {
        let host = try TestHost()
        var environment = host.environment
        environment.dataDirectory = host.root + "/data"
        let path = ScratchDisk.path(for: "box", in: environment)
        #expect(path == host.root + "/data/scratch/box.ext4")
        // None asked for and none there: nothing.
        #expect(try ScratchDisk.prepare(for: "box", size: nil, environment: environment) == nil)

        let made = try #require(try ScratchDisk.prepare(for: "box", size: "16M", environment: environment))
        #expect(made.made && made.request == .scratch(path))
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_size == 16 << 20 && info.st_mode & 0o777 == 0o600)
        #expect(info.st_blocks * 512 < 8 << 20, "sparse: \(info.st_blocks) blocks written")
        // The ext4 superblock's magic (0xEF53 at byte 1080).
        let fd = open(path, O_RDONLY)
        var magic: [UInt8] = [0, 0]
        #expect(pread(fd, &magic, 2, 1080) == 2 && magic == [0x53, 0xef])
        close(fd)

        // Kept: found again without a size, or with the same one; another size is refused.
        #expect(try ScratchDisk.prepare(for: "box", size: nil, environment: environment)?.made == false)
        #expect(try ScratchDisk.prepare(for: "box", size: "16m", environment: environment)?.made == false)
        #expect(throws: HostError.self) { try ScratchDisk.prepare(for: "box", size: "32M", environment: environment) }
        do { _ = try ScratchDisk.prepare(for: "box", size: "32M", environment: environment) } catch {
            #expect(error.kind == .badInput && error.message.contains("VM box already has a 16 MiB scratch disk"))
            #expect(error.message.contains("momin stop box --remove-scratch"))
        }
        #expect(try ScratchDisk.remove(for: "box", registry: host.registry, environment: environment))
        #expect(access(path, F_OK) != 0)
        #expect(try !ScratchDisk.remove(for: "box", registry: host.registry, environment: environment))
    }

    @Test func badSizesAndNamesAreRefusedAndNothingIsMade() throws {
        let host = try TestHost()
        var environment = host.environment
        environment.dataDirectory = host.root + "/data"
        for (size, message) in [("1M", "--scratch 1M is out of range: give 8M to 1T"), ("lots", "--scratch lots is not a size"),
                                ("2T", "--scratch 2T is out of range")] {
            do {
                _ = try ScratchDisk.prepare(for: "box", size: size, environment: environment)
                Issue.record("\(size) was taken")
            } catch {
                #expect(error.kind == .badInput && error.message.hasPrefix(message), "\(error.message)")
            }
        }
        #expect(access(ScratchDisk.path(for: "box", in: environment), F_OK) != 0)
        #expect(throws: HostError.self) { try ScratchDisk.prepare(for: "../box", size: "16M", environment: environment) }
    }
}

@Suite struct VMDisksTests {
    @Test func aLongLivedVMsReadWriteDisksAreHashedAsItLeftThem() throws {
        let folder = try AttachedDiskTests.Folder()
        let ro = try AttachedDisk.open(DiskRequest(path: folder.path + "/good.img", name: "e"), policy: nil)
        let rw = try AttachedDisk.open(DiskRequest(path: folder.path + "/allowed/ok.img", writable: true, name: "w"), policy: nil)
        try VMDisks.save([ro, rw], in: folder.path)
        #expect(try String(contentsOfFile: folder.path + "/disks", encoding: .utf8)
            == "ro\t8192\te\t\(ro.identity)\t\(folder.path)/good.img\nrw\t8192\tw\t\(rw.identity)\t\(folder.path)/allowed/ok.img\n")
        // Its agent host passes the named ones on to sub-agents.
        #expect(VMDisks.held(vm: "v", in: folder.path) { _ in } == [HeldDisk(name: "e", path: folder.path + "/good.img", writable: false),
                                                                   HeldDisk(name: "w", path: folder.path + "/allowed/ok.img", writable: true)])
        rw.close()
        // The VM wrote to it.
        let changed = [UInt8](repeating: 0x5a, count: 8192)
        try Data(changed).write(to: URL(fileURLWithPath: folder.path + "/allowed/ok.img"))
        var warnings: [String] = []
        let states = VMDisks.detachStates(vm: "v", in: folder.path) { warnings.append($0) }
        #expect(states == [DiskState(vm: "v", name: "w", path: folder.path + "/allowed/ok.img", writable: true, size: 8192,
                                     identity: rw.identity, sha256: MerkleHash(bytes: Array(SHA256.hash(data: changed))))])
        #expect(warnings.isEmpty)
        // A damaged line is said, not trusted.
        try "garbage\n".write(toFile: folder.path + "/disks", atomically: true, encoding: .utf8)
        #expect(VMDisks.detachStates(vm: "v", in: folder.path) { warnings.append($0) }.isEmpty)
        #expect(warnings.count == 1 && warnings[0].contains("has a damaged line"))
    }

    @Test func disksOpenInOrderRootImageFirstScratchLast() throws {
        let folder = try AttachedDiskTests.Folder()
        try Data(count: 4096).write(to: URL(fileURLWithPath: folder.path + "/scratch.ext4"))
        let disks = try AttachedDisk.openAll(rootImage: folder.path + "/good.img", disks: [DiskRequest(path: folder.path + "/allowed/ok.img", name: "e")],
                                             scratch: .scratch(folder.path + "/scratch.ext4"), policy: nil)
        #expect(disks.map(\.request.name) == ["momin-root", "e", "momin-scratch"])
        #expect(disks[0].attachDigest == nil && disks[1].attachDigest != nil)
        #expect(AttachedDisk.commandLineWords(disks, overlaySize: "64m")
            == ["momin.root=momin-root", "momin.disk=e:ro", "momin.disk=momin-scratch:scratch", "momin.overlay=64m"])
        #expect(AttachedDisk.configurations(disks).map(\.readOnly) == [true, true, false])
    }

    @Test func thePolicysRateCapsBoundWhatWasAskedFor() throws {
        let folder = try AttachedDiskTests.Folder()
        let policy = try AgentPolicy.parse("""
            version: 1
            agent: t
            resources:
              disks:
                - path: \(folder.path)/good.img
                  bps: 65536
                  iops: 50
                - path: \(folder.path)/allowed/*
            """, format: .yaml, file: "t.yaml")
        let none = try AttachedDisk.open(DiskRequest(path: folder.path + "/good.img"), policy: policy)
        #expect(none.request.bytesPerSecond == 65536 && none.request.operationsPerSecond == 50)
        none.close()
        var asked = DiskRequest(path: folder.path + "/good.img")
        asked.bytesPerSecond = 1 << 30
        asked.operationsPerSecond = 10
        let faster = try AttachedDisk.open(asked, policy: policy)
        #expect(faster.request.bytesPerSecond == 65536 && faster.request.operationsPerSecond == 10)
        #expect(AttachedDisk.configurations([faster]).first?.bytesPerSecond?.perSecond == 65536)
        faster.close()
        // A rule without caps leaves the request as it is; no policy, likewise.
        #expect(try AttachedDisk.open(DiskRequest(path: folder.path + "/allowed/ok.img"), policy: policy).request.bytesPerSecond == nil)
        #expect(try AttachedDisk.open(asked, policy: nil).request.bytesPerSecond == 1 << 30)
    }

    @Test func aPathWithAControlCharacterIsRefused() throws {
        let folder = try AttachedDiskTests.Folder()
        let odd = folder.path + "/a\tb.img"
        try Data(count: 512).write(to: URL(fileURLWithPath: odd))
        #expect(AttachedDiskTests.refusal(DiskRequest(path: odd))?.message == "--disk \(odd): the path holds a control character; rename the file")
    }
}
