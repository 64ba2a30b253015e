import Glibc
import GuestDisks
import Testing

@Suite struct RootSwitchTests {
    @Test func theCommandLineAsksForARootAndItsLayer() throws {
        #expect(RootSwitch.parse(commandLine: ["console=ttyS0", "momin.doors"]) == nil)
        #expect(RootSwitch.parse(commandLine: ["momin.root=momin-root"]) == .success(RootSwitch(serial: "momin-root", overlaySize: "25%")))
        #expect(RootSwitch.parse(commandLine: ["momin.overlay=512m", "momin.root=img"]) == .success(RootSwitch(serial: "img", overlaySize: "512m")))
        for size in ["1g", "100%", "4096", "50K"] {
            #expect(RootSwitch.parse(commandLine: ["momin.root=r", "momin.overlay=\(size)"]) == .success(RootSwitch(serial: "r", overlaySize: size)))
        }
    }

    /// A malformed value stops the boot (the caller powers off); the size can smuggle in no
    /// other tmpfs option.
    @Test func malformedValuesAreRefused() {
        #expect(RootSwitch.parse(commandLine: ["momin.root="]) == .failure(.badParameter("momin.root=: not a disk serial")))
        #expect(RootSwitch.parse(commandLine: ["momin.root=../x"]) == .failure(.badParameter("momin.root=../x: not a disk serial")))
        for size in ["", "0", "1g,mode=4777", "m", "-1m", "1t", "12345678901234"] {
            #expect(RootSwitch.parse(commandLine: ["momin.root=r", "momin.overlay=\(size)"])
                    == .failure(.badParameter("momin.overlay=\(size): expected a size such as 256m, 1g or 50%")), "\(size)")
        }
    }

    /// switch_root's order: the image read-only without journal replay, the tmpfs, the overlay
    /// over both, /proc /sys /dev moved in, hands and the Python module bound read-only, and only
    /// then the move onto /.
    @Test func theStepsBuildTheLayersThenEnter() {
        let steps = RootSwitch(serial: "r", overlaySize: "64m").steps(device: "vda")
        #expect(steps.map(\.description) == [
            "mkdir /.momin", "mkdir /.momin/image", "mkdir /.momin/rw", "mkdir /.momin/root",
            "mount ext4 /dev/vda on /.momin/image (noload)",
            "mount tmpfs tmpfs on /.momin/rw (size=64m,mode=0755)",
            "mkdir /.momin/rw/upper", "mkdir /.momin/rw/work",
            "mount overlay overlay on /.momin/root (lowerdir=/.momin/image,upperdir=/.momin/rw/upper,workdir=/.momin/rw/work)",
            "mkdir /.momin/root/proc", "move /proc to /.momin/root/proc",
            "mkdir /.momin/root/sys", "move /sys to /.momin/root/sys",
            "mkdir /.momin/root/dev", "move /dev to /.momin/root/dev",
            "mkdir /.momin/root/usr/bin", "create /.momin/root/usr/bin/hands",
            "bind /init on /.momin/root/usr/bin/hands",
            "bind /usr/lib/momin/python/momin_hands.py on /.momin/root/usr/lib/python3/dist-packages/momin_hands.py where both are there",
            "make /.momin/root the root",
        ])
        #expect(steps[4] == .mount(source: "/dev/vda", target: "/.momin/image", type: "ext4", flags: UInt(MS_RDONLY | MS_NODEV), data: "noload"))
        #expect(steps[17] == .bind(from: "/init", to: "/.momin/root/usr/bin/hands", readOnly: true))
        #expect(steps[18] == .bindIfPresent(from: "/usr/lib/momin/python/momin_hands.py",
                                            to: "/.momin/root/usr/lib/python3/dist-packages/momin_hands.py"))
    }

    /// An image without Python (no dist-packages), an initramfs without the module, or a link
    /// where the module or its directory would go: nothing is made, and the boot goes on.
    @Test func thePythonModuleIsBoundOnlyWhereBothAreThere() throws {
        let scratch = try DiskSetupTests.Tree(serials: [:])
        let module = scratch.base + "/initramfs/momin_hands.py"
        let packages = scratch.base + "/root/usr/lib/python3/dist-packages"
        let target = packages + "/momin_hands.py"
        let step = MountStep.bindIfPresent(from: module, to: target)

        try DiskSetupTests.Tree.mkdirs(scratch.base + "/initramfs")
        close(open(module, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644))
        #expect(step.perform() == nil)
        #expect(access(scratch.base + "/root/usr/lib", F_OK) != 0)

        try DiskSetupTests.Tree.mkdirs(scratch.base + "/elsewhere")
        try DiskSetupTests.Tree.mkdirs(scratch.base + "/root/usr/lib/python3")
        #expect(symlink(scratch.base + "/elsewhere", packages) == 0)
        #expect(step.perform() == nil)
        #expect(access(scratch.base + "/elsewhere/momin_hands.py", F_OK) != 0)
        #expect(unlink(packages) == 0)

        try DiskSetupTests.Tree.mkdirs(packages)
        #expect(symlink("/etc/passwd", target) == 0)
        #expect(step.perform() == nil)
        #expect(unlink(target) == 0)

        let missing = MountStep.bindIfPresent(from: scratch.base + "/initramfs/absent.py", to: target)
        #expect(missing.perform() == nil)
        #expect(access(target, F_OK) != 0)
    }

    @Test func aMissingDiskIsNamed() {
        #expect(RootSwitch(serial: "gone").run(sysBlock: "/nonexistent") == .noDevice(serial: "gone"))
        #expect(RootSwitchError.noDevice(serial: "gone").description == "no virtio disk has serial gone (the root image)")
    }
}
