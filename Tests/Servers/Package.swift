// swift-tools-version:6.0
// The loopback servers the egress, Brain and package tests talk to, built apart from the host
// package: `momin-test-server http` (files, echo, big and slow bodies; RFC 9112), `static` (a
// directory as a static site: a PEP 503 package index) and `openai` (a scripted
// OpenAI-compatible Chat Completions server), one fully static ELF (Glibc only, no Foundation,
// no dependencies), so it runs in the rig's L2, which has no Python.
//
//   swift build -c release --static-swift-stdlib   →  .build/release/momin-test-server
//   swift test                                      →  the JSON codec, SHA-256, the HTTP parser,
//                                                      file lookup under a root
//   Tests/cli/test-server.sh Tests/Servers/.build/release/momin-test-server
import PackageDescription

let staticExecutable: [String] = ["-static-executable"]

let package = Package(
    name: "MominTestServers",
    products: [
        .executable(name: "momin-test-server", targets: ["momin-test-server"]),
    ],
    targets: [
        // Everything but `main`: sockets and threads, the HTTP/1.1 reader and writer, JSON,
        // SHA-256, the three servers and their command lines.
        .target(name: "TestServers"),
        .executableTarget(
            name: "momin-test-server",
            dependencies: ["TestServers"],
            swiftSettings: [.unsafeFlags(staticExecutable)],
            linkerSettings: [.unsafeFlags(staticExecutable)]
        ),
        // The pure parts: JSON, SHA-256, request heads and chunked bodies over a socketpair, and
        // file lookup under a root.
        .testTarget(name: "TestServersTests", dependencies: ["TestServers"]),
    ]
)
