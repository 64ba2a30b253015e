// swift-tools-version:6.0
// The code that runs inside the guest, built apart from the host package: `momin-init`,
// the guest's PID 1, and `hands`, an agent's client for calls to the host, each one fully
// static ELF (Glibc only, no Foundation).
//
//   swift build -c release --static-swift-stdlib     →  .build/release/momin-init, hands
//   swift test                                       →  the Doors server and the hands and
//                                                       egress relays over socketpairs and
//                                                       local TCP, the hands command line
//   cd python && python3 -m unittest                 →  momin_hands, the Python hands client
import PackageDescription

let staticExecutable: [String] = ["-static-executable"]

let package = Package(
    name: "MominGuest",
    products: [
        .executable(name: "momin-init", targets: ["momin-init"]),
        .executable(name: "hands", targets: ["hands"]),
    ],
    dependencies: [
        // The root package, for its pure-Swift `Doors` library (the wire protocol). Named, so
        // that the reference below does not depend on the checkout's directory name.
        .package(name: "MominAI", path: ".."),
    ],
    targets: [
        // What Swift cannot do by itself: the variadic syscall(2) and prctl(2), the x86 `outb`
        // instruction, <sys/reboot.h>, GNU calls the Glibc module hides (pipe2, accept4,
        // posix_spawn_file_actions_addchdir_np), AF_VSOCK's sockaddr_vm, AF_INET's sockaddr_in
        // and the SIOCSIFFLAGS ioctl (egress), the siginfo of waitid(2), and a constructor that
        // runs before the Swift runtime's own.
        .target(name: "CGuestSys"),
        // The guest's Doors server over any connected stream socket: exec, files, ping; the
        // child reaper; the hands relay (one call from a local socket to the host's port); the
        // egress relay (loopback TCP to the host's ports, byte for byte) and /etc/hosts.
        // momin-init adds the vsock listener and the relays' sockets.
        .target(
            name: "GuestDoors",
            dependencies: ["CGuestSys", .product(name: "Doors", package: "MominAI"), .product(name: "POSIX", package: "MominAI")]
        ),
        // The disks the host attached: their serials from sysfs, /dev/disk/by-id links, and
        // the mounts the kernel command line asks for (evidence read-only at /evidence/NAME).
        .target(name: "GuestDisks", dependencies: [.product(name: "POSIX", package: "MominAI")]),
        .executableTarget(
            name: "momin-init",
            dependencies: ["CGuestSys", "GuestDisks", "GuestDoors", "HandsClient", .product(name: "Doors", package: "MominAI"),
                           .product(name: "POSIX", package: "MominAI")],
            swiftSettings: [.unsafeFlags(staticExecutable)],
            linkerSettings: [.unsafeFlags(staticExecutable)]
        ),
        // What `hands` does apart from its I/O: the command line into a HandsCall, a reply into
        // output and an exit status; and the one-call exchange with momin-init's socket;
        // `hands install pip`: the files fetched call by call, then the guest's pip run on them;
        // `hands install apt`: the guest's apt-get run through the egress proxy.
        .target(
            name: "HandsClient",
            dependencies: ["CGuestSys", .product(name: "Doors", package: "MominAI"), .product(name: "POSIX", package: "MominAI")]
        ),
        .executableTarget(
            name: "hands",
            dependencies: ["HandsClient", .product(name: "Doors", package: "MominAI")],
            swiftSettings: [.unsafeFlags(staticExecutable)],
            linkerSettings: [.unsafeFlags(staticExecutable)]
        ),
        // The server and the relays over socketpairs (and local TCP) on the host, with a small
        // client built on the Doors codec; the hands relay end to end with the hands client and
        // with the Python one (python/momin_hands.py, run by python3).
        .testTarget(
            name: "GuestDoorsTests",
            dependencies: ["GuestDoors", "CGuestSys", "HandsClient", .product(name: "Doors", package: "MominAI"),
                           .product(name: "POSIX", package: "MominAI")]
        ),
        // Disk names from the command line, serials from a scratch sysfs tree, the mounts asked.
        .testTarget(name: "GuestDisksTests", dependencies: ["GuestDisks", .product(name: "POSIX", package: "MominAI")]),
        // The hands command line and reply mapping, and the install manifest: pure; `hands
        // install pip` and `hands install apt` end to end against a hands socket served by the
        // test, with stand-ins for pip and apt-get; the frames the Python client's tests compare
        // against (python/testdata/frames.json).
        .testTarget(
            name: "HandsClientTests",
            dependencies: ["CGuestSys", "HandsClient", .product(name: "Doors", package: "MominAI"),
                           .product(name: "POSIX", package: "MominAI")]
        ),
    ]
)
