// momin-init: PID 1 of a MominAI guest.
//
// Mounts /proc, /sys and /dev, loads the kernel modules named in /lib/modules/momin.order,
// signals the VMM's boot timer, prints one status line and powers the machine off (or, with
// `momin.shell=1` on the kernel command line, hands the console to /bin/sh). With
// `momin.doors[=PORT]` it serves the host's Doors connections over vsock instead, forever;
// `momin.hands[=PORT]` then also relays the guest's hands calls to the host, and `momin.egress`
// brings up lo and relays TCP connections to 127.0.0.1:3128 (where the proxy variables point)
// and 127.0.0.2:80 (brain.momin in /etc/hosts) to the host's vsock ports 1026 and 1027.
// Run as `hands` (the image's /usr/bin/hands links here), it is the agent's hands client instead.
// `momin.baseline=PORT` adds raw vsock echo/sink/source services for benchmarks.
// `momin.disk=NAME:ro|rw` mounts the virtio disk whose serial is NAME at /evidence/NAME
// (read-only, journal not replayed) or /disks/NAME. `momin.root=SERIAL [momin.overlay=SIZE]`
// makes a writable layer over that disk's image the root first.
// Errors are printed and the boot goes on; the only fatal error is not being PID 1.
import GuestDisks
import GuestDoors
import Glibc
import HandsClient

// Reached through the image's /usr/bin/hands link, it is the hands client, not an init.
if getpid() != 1, let name = CommandLine.arguments.first, name == "hands" || name.hasSuffix("/hands") {
    HandsMain.run(Array(CommandLine.arguments.dropFirst()))
}

/// Where the image lists its modules, one absolute path per line, in load order.
let moduleOrderFile = "/lib/modules/momin.order"

// As PID 1 the arguments are never read: /proc is not mounted when the program starts, and
// Swift's CommandLine on Linux finds argv through /proc/self/maps, so it would be empty anyway.
let dryRun = getpid() != 1
if dryRun && CommandLine.arguments.dropFirst().contains(where: { $0 == "--help" || $0 == "-h" }) {
    Console.print("""
        usage: momin-init                  the guest's /init (PID 1); kernel parameters momin.doors[=PORT],
                                           momin.hands[=PORT], momin.egress, momin.baseline=PORT, momin.shell=1,
                                           momin.disk=NAME:ro|rw, momin.root=SERIAL, momin.overlay=SIZE (docs/guest.md)
               momin-init --not-pid1-test  outside a guest: print the status line, change nothing
               hands ...                   run through the image's /usr/bin/hands link: the agent's hands client
        """)
    exit(0)
}
if dryRun && !CommandLine.arguments.dropFirst().contains("--not-pid1-test") {
    Console.error("must run as PID 1 (the guest's /init); pass --not-pid1-test to try it elsewhere")
    exit(2)
}

func statusLine() -> String {
    "momin-init: up cpus=\(System.onlineCPUs()) kernel=\(System.kernelRelease()) uptime=\(System.uptime())"
}

if dryRun {
    // Outside a guest, skip everything with side effects on the machine: mounts, module
    // loading, port I/O and power-off. What remains shows the status line.
    Console.error("--not-pid1-test: not mounting, loading modules, signalling or powering off")
    Console.print(statusLine())
    exit(0)
}

mountEarlyFilesystems()
Console.reopenIfClosed()
loadModules(listedIn: moduleOrderFile)
let commandLine = System.kernelCommandLine()
// A root image (momin.root=SERIAL): a writable layer over it becomes `/` before anything is
// served. A root that was asked for and cannot be made stops the machine: an agent must not
// run on the initramfs believing it is on its image.
if let asked = RootSwitch.parse(commandLine: commandLine) {
    switch asked {
    case .failure(let error):
        Console.error("root image: \(error); powering off")
        Power.off()
    case .success(let root):
        if let error = root.run() {
            Console.error("root image: \(error); powering off")
            Power.off()
        }
        Console.error("root: the image on disk \(root.serial), read-only, under a \(root.overlaySize) writable layer")
    }
}
// The host's disks: by-id links, and the mounts momin.disk=NAME:ro|rw asks for.
let disks = DiskSetup.run(commandLine: commandLine)
for line in disks.mounted { Console.error("disk \(line)") }
for problem in disks.problems { Console.error(problem) }
// Opt-in raw vsock services for benchmarks; they listen before the host can see the boot.
let baselineRunning = BaselineService.startIfAsked(commandLine: commandLine)

if let (port, problem) = DoorsParameter.port(commandLine: commandLine) {
    // Serve mode: listen first, so that the host may connect as soon as the boot timer fires.
    if let problem { Console.error(problem) }
    HandsService.startIfAsked(commandLine: commandLine)
    let egress = EgressService.startIfAsked(commandLine: commandLine)
    let listener = DoorsService.listen(port: port)
    Console.print(statusLine())
    BootTimer.signalBootComplete()
    if let listener {
        DoorsService.serve(listener: listener, egress: egress)
    }
    Console.error("doors: nothing to serve on, powering off")
    Power.off()
}

BootTimer.signalBootComplete()
Console.print(statusLine())
if baselineRunning {
    // Without Doors the raw services are all there is to serve: keep the machine up until the
    // host stops it.
    Console.error("baseline: serving without momin.doors until the host stops the machine")
    while true { pause() }
}
if commandLine.contains("momin.shell=1") {
    Power.execShell()
}
Power.off()
