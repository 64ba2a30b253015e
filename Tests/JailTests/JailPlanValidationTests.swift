import Testing
@testable import Jail

/// A made-up file system: path → kind; anything else is missing.
struct FakePaths: PathProbe {
    var kinds: [String: PathKind] = ["/run/jail": .directory, "/opt/vmm": .regularFile, "/run/vm": .directory,
                                     "/dev/kvm": .characterDevice, "/dev/null": .characterDevice, "/etc/passwd": .regularFile]
    func kind(of path: String) -> PathKind { kinds[path] ?? .missing }
}

@Suite struct JailPlanValidationTests {
    func plan(root: String = "/run/jail", binds: [String] = [], devices: [String] = []) throws -> JailPlan {
        var args = ["--id", "vm", "--root", root, "--uid", "61234", "--gid", "61234"]
        for b in binds { args += ["--bind", b] }
        for d in devices { args += ["--device", d] }
        return try JailArguments.parse(args + ["--", "/bin/momin-vmm"])
    }

    func refusal(root: String = "/run/jail", binds: [String] = [], devices: [String] = []) throws -> String? {
        do { try plan(root: root, binds: binds, devices: devices).validate(against: FakePaths()); return nil }
        catch { return "\(error)" }
    }

    @Test func aPlanForTheVMMPasses() throws {
        #expect(try refusal(binds: ["/opt/vmm:/bin/momin-vmm", "/run/vm:/run/vm:rw"], devices: ["/dev/kvm"]) == nil)
    }

    @Test func theRootMustBeAnExistingDirectoryOtherThanSlash() throws {
        #expect(try refusal(root: "/nope") == "--root /nope does not exist")
        #expect(try refusal(root: "/opt/vmm") == "--root /opt/vmm is not a directory")
        #expect(try refusal(root: "/") == "--root / would jail the whole host")
    }

    @Test func aMissingSourceIsNamed() throws {
        #expect(try refusal(binds: ["/opt/gone:/bin/x"]) == "--bind /opt/gone:/bin/x: source /opt/gone does not exist")
    }

    @Test func devicesMustBeDeviceNodesUnderDev() throws {
        #expect(try refusal(devices: ["/dev/nope"]) == "--device /dev/nope does not exist")
        #expect(try refusal(devices: ["/etc/passwd"]) == "--device /etc/passwd must lie under /dev")
        var fake = FakePaths()
        fake.kinds["/dev/shm"] = .directory
        do { try plan(devices: ["/dev/shm"]).validate(against: fake); Issue.record("accepted") }
        catch { #expect("\(error)" == "--device /dev/shm is not a character or block device") }
    }

    @Test func duplicateDestinations() throws {
        #expect(try refusal(binds: ["/opt/vmm:/bin/vmm", "/etc/passwd:/bin/vmm"])
                == "--bind /opt/vmm:/bin/vmm and --bind /etc/passwd:/bin/vmm both mount onto /bin/vmm in the jail")
        #expect(try refusal(binds: ["/dev/null"], devices: ["/dev/null"])
                == "--bind /dev/null and --device /dev/null both mount onto /dev/null in the jail")
        #expect(try refusal(devices: ["/dev/kvm", "/dev/kvm"])
                == "--device /dev/kvm and --device /dev/kvm both mount onto /dev/kvm in the jail")
    }

    @Test func nestedDestinations() throws {
        #expect(try refusal(binds: ["/run/vm:/run", "/opt/vmm:/run/vmm"])
                == "--bind /opt/vmm:/run/vmm would mount inside /run, which --bind /run/vm:/run mounts; nested mounts are not supported")
        #expect(try refusal(binds: ["/opt/vmm:/run/vmm", "/run/vm:/run"])
                == "--bind /opt/vmm:/run/vmm would mount inside /run, which --bind /run/vm:/run mounts; nested mounts are not supported")
    }

    @Test func reservedDestinations() throws {
        #expect(try refusal(binds: ["/run/vm:/"]) == "--bind /run/vm:/: / is the jail's own root (a tmpfs)")
        #expect(try refusal(binds: ["/run/vm:/proc"]) == "--bind /run/vm:/proc: /proc is the jail's own /proc")
        #expect(try refusal(binds: ["/opt/vmm:/proc/x"]) == "--bind /opt/vmm:/proc/x: /proc/x is the jail's own /proc")
        #expect(try refusal(binds: ["/run/vm:/dev"], devices: ["/dev/kvm"])
                == "--bind /run/vm:/dev: /dev is the jail's own /dev (for --device)")
        #expect(try refusal(binds: ["/run/vm:/dev"]) == nil)
    }
}
