// swift-tools-version:6.0
// The code that runs inside the guest, built apart from the host package: `momin-init`,
// the guest's PID 1, as one fully static ELF (Glibc only, no Foundation).
//
//   swift build -c release --static-swift-stdlib     →  .build/release/momin-init
//   swift test                                       →  the Doors server over socketpairs
import PackageDescription

let staticExecutable: [String] = ["-static-executable"]

let package = Package(
    name: "MominGuest",
    products: [
        .executable(name: "momin-init", targets: ["momin-init"]),
    ],
    dependencies: [
        // The root package, for its pure-Swift `Doors` library (the wire protocol). Named, so
        // that the reference below does not depend on the checkout's directory name.
        .package(name: "MominAI", path: ".."),
    ],
    targets: [
        // What Swift cannot do by itself: the variadic syscall(2) and prctl(2), the x86 `outb`
        // instruction, <sys/reboot.h>, GNU calls the Glibc module hides (pipe2, accept4,
        // posix_spawn_file_actions_addchdir_np), AF_VSOCK's sockaddr_vm, the siginfo of
        // waitid(2), and a constructor that runs before the Swift runtime's own.
        .target(name: "CGuestSys"),
        // The guest's Doors server over any connected stream socket: exec, files, ping; the
        // child reaper. momin-init adds the vsock listener.
        .target(
            name: "GuestDoors",
            dependencies: ["CGuestSys", .product(name: "Doors", package: "MominAI")]
        ),
        .executableTarget(
            name: "momin-init",
            dependencies: ["CGuestSys", "GuestDoors"],
            swiftSettings: [.unsafeFlags(staticExecutable)],
            linkerSettings: [.unsafeFlags(staticExecutable)]
        ),
        // The server over socketpairs on the host, with a small client built on the Doors codec.
        .testTarget(
            name: "GuestDoorsTests",
            dependencies: ["GuestDoors", "CGuestSys", .product(name: "Doors", package: "MominAI")]
        ),
    ]
)
