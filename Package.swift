// swift-tools-version:6.0
// MominAI: a microVM hypervisor for autonomous agents. The folder tree shows the machine:
// C shim → KVM wrapper → guest memory → boot loader and ACPI → devices → VMM → CLI.
import PackageDescription

let package = Package(
    name: "MominAI",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "momin", targets: ["MominCLI"]),
        .executable(name: "momin-vmm", targets: ["MominVMM"]),
        .executable(name: "momin-probe", targets: ["MominProbe"]),
        .executable(name: "momin-jailer", targets: ["MominJailer"]),
        // libFuzzer over every parser hostile bytes reach (Scripts/fuzz); a replay driver in ordinary builds.
        .executable(name: "momin-fuzz", targets: ["MominFuzz"]),
        // The Doors wire protocol, shared with the guest package (Guest/), which depends on it by path.
        .library(name: "Doors", targets: ["Doors"]),
        // The POSIX helpers (locks, waits, threads, the EINTR funnel, whole reads and writes), shared with Guest/ too.
        .library(name: "POSIX", targets: ["POSIX"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
    ],
    targets: [
        // Foundation-free POSIX helpers for host and guest: errno errors, the EINTR funnel, whole
        // reads and writes, a heap-allocated mutex, a monitor with monotonic deadlines, threads.
        .target(name: "POSIX"),
        // The only code that includes <linux/kvm.h> or calls ioctl(2). Internal: only KVM imports it.
        .target(name: "CKVM"),
        // Typed KVM wrapper: KVMSystem → VirtualMachine → VCPU, exits as an enum.
        .target(name: "KVM", dependencies: ["CKVM"]),
        // libseccomp's <seccomp.h> (Debian: libseccomp-dev). Internal: only Seccomp imports it.
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        // Per-thread seccomp filters: typed rules, the VMM's thread-class profiles as data, install on
        // the calling thread only, and the SIGSYS reporter for trap mode.
        .target(name: "Seccomp", dependencies: ["CSeccomp"]),
        // Bounds-checked guest-physical memory.
        .target(name: "GuestMemory"),
        // ACPI 6.x table builders and an AML encoder (pure).
        .target(name: "ACPI"),
        // bzImage loading, boot_params, e820, page tables, GDT (Linux x86 boot protocol).
        .target(name: "LinuxBoot", dependencies: ["GuestMemory"]),
        // Emulated devices: each folder one device, testable without KVM; virtio transport and queues.
        .target(name: "Devices", dependencies: ["CLinux", "GuestMemory", "POSIX"]),
        // The Doors wire protocol: versioned, length-prefixed frames (no Foundation; host and guest).
        .target(name: "Doors"),
        // The host's client of a guest's momin-init: Doors over the VMM's vsock socket (exec, files, ping).
        .target(name: "GuestClient", dependencies: ["Doors", "POSIX"]),
        // Policy files (YAML, JSON) → a compiled policy; a pure evaluator of tool calls and limits.
        .target(name: "Policy", dependencies: ["Doors", "PackageIndex", "POSIX", .product(name: "Yams", package: "Yams")]),
        // RFC 6962 Merkle trees: tree hashes, an incremental frontier, inclusion and consistency proofs (pure).
        .target(name: "Merkle", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // What the audit log and bucket stores share as signed SQLite Merkle logs: the file's identity,
        // the writer's lock, heads and their signatures, resuming a writer, the verifier's walk.
        .target(name: "SignedLog", dependencies: ["Merkle", .product(name: "GRDB", package: "GRDB.swift")]),
        // The signed, append-only audit log in SQLite: every tool request, decision, result and lifecycle event.
        .target(name: "Audit", dependencies: [
            "Merkle", "SignedLog", "POSIX", .product(name: "Crypto", package: "swift-crypto"), .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // Buckets: append-only, content-addressed stores per namespace, Merkle-verifiable, signed with the audit key type.
        .target(name: "Buckets", dependencies: [
            "Audit", "Merkle", "SignedLog", .product(name: "Crypto", package: "swift-crypto"), .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // The tool gateway: every tool call through the policy and into the audit log.
        .target(name: "Gateway", dependencies: [
            "GuestClient", "Doors", "Policy", "Audit", "Buckets", "Merkle", "POSIX", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // HTTP/1.1 as a forward proxy and a relay read it: request and response heads, the chunked coding, bounded and strict (pure; fuzzed).
        .target(name: "HTTPWire"),
        // OpenAI-compatible Chat Completions as the Brain relay reads them: bounded JSON scanning, the request's model and token fields, SSE events, usage (pure; fuzzed).
        .target(name: "BrainWire"),
        // Python packages as the host reads them for a guest: PEP 440 versions and specifiers, PEP 508 requirements and markers, core metadata, wheel names and tags, simple index pages (pure; fuzzed).
        .target(name: "PackageIndex"),
        // The host's end of agents' network access: the guest's proxy connections judged by policy,
        // resolved and connected by the host, counted and logged (docs/egress.md); the Brain relay;
        // package installs resolved and fetched by the host (docs/hands.md).
        .target(name: "Egress", dependencies: [
            "Audit", "BrainWire", "Doors", "Gateway", "HTTPWire", "Merkle", "PackageIndex", "Policy", "POSIX", "TLS",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The few OpenSSL 3 calls TLS makes (Debian's libssl-dev), several of them macros. Internal: only TLS imports it.
        .target(name: "CTLS", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        // A blocking TLS client over a connected socket, with poll(2) deadlines, for the Brain relay (docs/tls.md).
        .target(name: "TLS", dependencies: ["CTLS", "POSIX"]),
        // Agents inside VMs calling out: the hands-call listener, doors between agents, sub-agents
        // (their policies no wider than the parent's), each call through its agent's gateway.
        .target(name: "Agents", dependencies: [
            "Doors", "Egress", "GuestClient", "Gateway", "Policy", "Buckets", "Merkle", "POSIX", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The resource ledger: host CPUs, memory and GPUs split among VMs, sub-agents carved from their parent's grant.
        .target(name: "Ledger", dependencies: ["POSIX"]),
        // cgroup v2: a parent for momin, one child per VM with cpu, memory and pids limits (Linux cgroup-v2.rst).
        .target(name: "Cgroups", dependencies: ["Ledger", "POSIX"]),
        // Linux calls Swift's Glibc module leaves out (no wrapper, variadic, _GNU_SOURCE): pivot_root,
        // close_range, prctl, unshare for the jailer; thread pinning for the VMM; fallocate for virtio-blk.
        // Only Jail, VMM and Devices import it.
        .target(name: "CLinux"),
        // What a microVM is made of (machine, files, vsock, entropy seed, seccomp mode) and
        // momin-vmm's command line, shared by momin and momin-vmm (pure, no KVM).
        .target(name: "MachineConfig"),
        // Config → builder → running machine: the only place the layers meet.
        .target(name: "VMM", dependencies: ["MachineConfig", "KVM", "GuestMemory", "ACPI", "LinuxBoot", "Devices", "Seccomp", "CLinux", "POSIX"]),
        // The VMM process: one microVM, no Foundation, no argument-parsing library.
        .executableTarget(name: "MominVMM", dependencies: ["VMM", "MachineConfig"]),
        // libcap-ng (Debian's libcap-ng-dev), a system library. Only Jail imports it.
        .systemLibrary(name: "CCapNG"),
        // The jail: namespaces, mounts and pivot_root, ids, rlimits, capabilities, no_new_privs.
        .target(name: "Jail", dependencies: ["CCapNG", "CLinux", "POSIX"]),
        // The jailer process: builds one jail and execs a program in it; no Foundation, no argument parser.
        .executableTarget(name: "MominJailer", dependencies: ["Jail"]),
        // Host-side probe of a running VM's vsock path: raw and Doors latency and throughput,
        // concurrent and hostile clients (benchmarks and rig scenarios).
        .executableTarget(name: "MominProbe", dependencies: ["GuestClient", "Doors", "POSIX"]),
        // The fuzz targets (docs/testing.md, "Fuzzing"): one function per parser that a guest or a file
        // reaches, each checking a property, not only that it does not crash.
        .target(name: "FuzzTargets", dependencies: ["BrainWire", "Doors", "HTTPWire", "PackageIndex", "Policy", "Devices", "GuestMemory", "ImageLayers"]),
        // libFuzzer's entry point over FuzzTargets, built by Scripts/fuzz with -sanitize=fuzzer,address.
        .executableTarget(name: "MominFuzz", dependencies: ["FuzzTargets", "POSIX"]),
        // Root file system images: `momin image build debian` (mmdebstrap, then mkfs.ext4 -d, no
        // mount), reproducible byte for byte, kept by SHA-256 with a manifest and a name index.
        // `momin image import` too: local OCI layouts and `docker save` archives, read by our own
        // bounded tar reader and applied without following a link.
        .target(name: "Images", dependencies: ["ImageLayers", "CZlib", "POSIX", .product(name: "Crypto", package: "swift-crypto")]),
        // Tar streams as image layers hold them (POSIX.1-2001 pax, GNU long names), the layer
        // path rules and ImageError: pure, no dependencies, so the fuzz build needs no crypto.
        .target(name: "ImageLayers"),
        // zlib's inflate (Debian's zlib1g-dev), a system library, for gzip layers. Only Images imports it.
        .systemLibrary(name: "CZlib"),
        // The host's side of MominAI as a library, one code path for the CLI, `momin serve` and
        // `momin mcp`: launch through jail and cgroup, the VM registry, ledger glue, governance,
        // sessions, agent trees and sub-agent VMs, the agent host. Links no VMM code: momin-vmm
        // checks and runs machines.
        .target(name: "Host", dependencies: [
            "MachineConfig", "GuestClient", "Doors", "Policy", "Audit", "Merkle", "Gateway", "Buckets", "Ledger", "Cgroups", "Jail",
            "Agents", "Egress", "Images", "POSIX", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // `momin serve`: the REST API over the Host library, HTTP/1.1 on a Unix socket (HTTPWire's
        // parser), callers admitted by SO_PEERCRED; its OpenAPI 3.1 document is embedded as committed.
        .target(name: "APIServer", dependencies: ["Host", "Agents", "Gateway", "GuestClient", "Doors", "HTTPWire", "Images", "Merkle", "Policy", "POSIX",
                                                 .product(name: "Crypto", package: "swift-crypto")],
                resources: [.embedInCode("openapi.json")]),
        // `momin mcp` and /mcp under `momin serve`: MCP tools over the sandboxes APIServer serves,
        // on the MCP Swift SDK's stdio and stateless Streamable HTTP transports.
        .target(name: "MominMCP", dependencies: ["APIServer", "POSIX", .product(name: "MCP", package: "swift-sdk")]),
        // `momin`: one file per command over the Host library.
        .executableTarget(
            name: "MominCLI",
            dependencies: ["APIServer", "MominMCP", "Host", "Images", "MachineConfig", "Doors", "Egress", "HTTPWire", "Policy", "Audit", "Merkle", "Gateway", "Buckets", "Ledger", "POSIX",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        // Tier 1: pure tests, fakes only.
        .testTarget(name: "POSIXTests", dependencies: ["POSIX"]),
        .testTarget(name: "MachineConfigTests", dependencies: ["MachineConfig"]),
        .testTarget(name: "ACPITests", dependencies: ["ACPI"]),
        .testTarget(name: "LinuxBootTests", dependencies: ["LinuxBoot", "GuestMemory"]),
        .testTarget(name: "DevicesTests", dependencies: ["Devices", "POSIX"]),
        .testTarget(name: "VirtioTests", dependencies: ["Devices", "GuestMemory", "POSIX"]),
        // A seeded generator (SplitMix64) for the property tests.
        .target(name: "TestRandom", path: "Tests/TestRandom"),
        .testTarget(name: "DoorsTests", dependencies: ["Doors", "TestRandom"]),
        // A fake VMM and guest speaking Doors over a real Unix socket, for the GuestClient, Gateway, Agents and Host tests.
        .target(name: "GuestClientTestSupport", dependencies: ["GuestClient", "Doors", "POSIX"], path: "Tests/GuestClientTestSupport"),
        .testTarget(name: "GuestClientTests", dependencies: ["GuestClient", "Doors", "GuestClientTestSupport", "POSIX"]),
        .testTarget(name: "PolicyTests", dependencies: ["Policy", "Doors", "POSIX", "TestRandom"]),
        .testTarget(name: "VMMTests", dependencies: ["VMM", "MachineConfig", "Devices", "KVM", "POSIX", "Seccomp"]),
        .testTarget(name: "SeccompTests", dependencies: ["Seccomp"]),
        .testTarget(name: "MerkleTests", dependencies: ["Merkle"]),
        .testTarget(name: "LedgerTests", dependencies: ["Ledger", "TestRandom"]),
        .testTarget(name: "JailTests", dependencies: ["Jail"]),
        .testTarget(name: "GatewayTests", dependencies: [
            "Gateway", "GuestClient", "Doors", "Policy", "Audit", "Buckets", "Merkle", "GuestClientTestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .testTarget(name: "AuditTests", dependencies: [
            "Audit", "Merkle", "POSIX", .product(name: "Crypto", package: "swift-crypto"), .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .testTarget(name: "BucketsTests", dependencies: [
            "Buckets", "Audit", "Merkle", .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .testTarget(name: "CgroupsTests", dependencies: ["Cgroups"]),
        // The proxy's parser (pure, with property tests), and the relay end to end: a socketpair for
        // the guest, real TCP servers on loopback for the far end, a real audit log.
        .testTarget(name: "EgressTests", dependencies: [
            "Egress", "HTTPWire", "Gateway", "Policy", "Audit", "Doors", "Merkle", "POSIX", "TestRandom", "TLS", "TLSTestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The TLS client against `openssl s_server` on loopback, with a throwaway CA made by the openssl CLI.
        .testTarget(name: "TLSTests", dependencies: ["TLS", "TLSTestSupport", "POSIX"]),
        // A throwaway CA and server certificate made with the openssl CLI, and a loopback listener,
        // for tests that talk to servers.
        .target(name: "TLSTestSupport", path: "Tests/TLSTestSupport"),
        // The Brain relay's parsers: JSON edge cases, the request's fields and rewrite, SSE, usage.
        .testTarget(name: "BrainWireTests", dependencies: ["BrainWire"]),
        // The package-index parsers against the PEPs' own examples, their refusals and bounds.
        .testTarget(name: "PackageIndexTests", dependencies: ["PackageIndex"]),
        .testTarget(name: "AgentsTests", dependencies: [
            "Agents", "Doors", "Egress", "Gateway", "Policy", "Audit", "Buckets", "GuestClientTestSupport", "GuestClient", "TLSTestSupport",
        ]),
        // The Host library with a fake momin-vmm (a shell script) and a fake guest at its socket.
        // Every committed seed and every input a fuzzer once crashed on, through its target.
        .testTarget(name: "FuzzTargetsTests", dependencies: ["FuzzTargets", "Devices", "POSIX"]),
        .testTarget(name: "HostTests", dependencies: [
            "APIServer", "Agents", "Host", "Images", "MachineConfig", "Ledger", "Audit", "Gateway", "Doors", "Merkle", "Policy", "POSIX", "GuestClient",
            "GuestClientTestSupport",
        ]),
        // The image store, manifests, sizes and the programs a build would run (no mmdebstrap needed).
        .testTarget(name: "ImagesTests", dependencies: ["ImageLayers", "Images"]),
        // The API server over a real Unix socket: routes against the committed OpenAPI document,
        // callers, bounds, problem details (no VM: the Host paths a VM needs run in the rig).
        // And the MCP tools' schemas and arguments, and /mcp through it.
        .testTarget(name: "APIServerTests", dependencies: ["APIServer", "MominMCP", "Doors", "Host", "Images", "Merkle", "Policy", "POSIX",
                                                        .product(name: "Crypto", package: "swift-crypto"), .product(name: "MCP", package: "swift-sdk")]),
        // Tier 2: real /dev/kvm with small hand-made guest code.
        .testTarget(name: "KVMTests", dependencies: ["KVM", "GuestMemory"]),
    ]
)
