// swift-tools-version:6.0
// The code that runs inside the guest, built apart from the host package: `momin-init`,
// the guest's PID 1, as one fully static ELF (Glibc only, no Foundation).
//
//   swift build -c release --static-swift-stdlib     →  .build/release/momin-init
import PackageDescription

let staticExecutable: [String] = ["-static-executable"]

let package = Package(
    name: "MominGuest",
    products: [
        .executable(name: "momin-init", targets: ["momin-init"]),
    ],
    targets: [
        // What Swift cannot do by itself: the variadic syscall(2) that finit_module needs
        // (glibc has no wrapper), the x86 `outb` instruction, <sys/reboot.h>, and a constructor
        // that runs before the Swift runtime's own.
        .target(name: "CGuestSys"),
        .executableTarget(
            name: "momin-init",
            dependencies: ["CGuestSys"],
            swiftSettings: [.unsafeFlags(staticExecutable)],
            linkerSettings: [.unsafeFlags(staticExecutable)]
        ),
    ]
)
