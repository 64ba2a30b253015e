// swift-tools-version:6.0
// MominAI: a microVM hypervisor for autonomous agents. The folder tree shows the machine:
// C shim → KVM wrapper → guest memory → boot loader and ACPI → devices → VMM → CLI.
import PackageDescription

let package = Package(
    name: "MominAI",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "momin", targets: ["MominCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // The only code that includes <linux/kvm.h> or calls ioctl(2). Internal: only KVM imports it.
        .target(name: "CKVM"),
        // Typed KVM wrapper: KVMSystem → VirtualMachine → VCPU, exits as an enum.
        .target(name: "KVM", dependencies: ["CKVM"]),
        // Bounds-checked guest-physical memory.
        .target(name: "GuestMemory"),
        // ACPI 6.x table builders and an AML encoder (pure).
        .target(name: "ACPI"),
        // bzImage loading, boot_params, e820, page tables, GDT (Linux x86 boot protocol).
        .target(name: "LinuxBoot", dependencies: ["GuestMemory"]),
        // Emulated devices: each folder one device, testable without KVM.
        .target(name: "Devices"),
        // Config → builder → running machine: the only place the layers meet.
        .target(name: "VMM", dependencies: ["KVM", "GuestMemory", "ACPI", "LinuxBoot", "Devices"]),
        .executableTarget(
            name: "MominCLI",
            dependencies: ["VMM", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        // Tier 1: pure tests, fakes only.
        .testTarget(name: "ACPITests", dependencies: ["ACPI"]),
        .testTarget(name: "LinuxBootTests", dependencies: ["LinuxBoot", "GuestMemory"]),
        .testTarget(name: "DevicesTests", dependencies: ["Devices"]),
        .testTarget(name: "VMMTests", dependencies: ["VMM", "Devices", "KVM"]),
        // Tier 2: real /dev/kvm with small hand-made guest code.
        .testTarget(name: "KVMTests", dependencies: ["KVM", "GuestMemory"]),
    ]
)
