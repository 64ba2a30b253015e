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
    /// over both, /proc /sys /dev moved in, hands bound read-only, and only then the move onto /.
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
            "make /.momin/root the root",
        ])
        #expect(steps[4] == .mount(source: "/dev/vda", target: "/.momin/image", type: "ext4", flags: UInt(MS_RDONLY | MS_NODEV), data: "noload"))
        #expect(steps[17] == .bind(from: "/init", to: "/.momin/root/usr/bin/hands", readOnly: true))
    }

    @Test func aMissingDiskIsNamed() {
        #expect(RootSwitch(serial: "gone").run(sysBlock: "/nonexistent") == .noDevice(serial: "gone"))
        #expect(RootSwitchError.noDevice(serial: "gone").description == "no virtio disk has serial gone (the root image)")
    }
}
