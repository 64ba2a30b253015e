import Glibc
import Testing
@testable import Seccomp

/// Filters are built with libseccomp in-process and never installed here (installing is for
/// good: Tests/cli/seccomp.sh proves the installed filters in momin-vmm's own threads).
@Suite struct SyscallFilterTests {
    @Test func knownNamesResolveToX8664Numbers() throws {
        #expect(try SyscallFilter.resolve("read") == 0)
        #expect(try SyscallFilter.resolve("ioctl") == 16)
        #expect(try SyscallFilter.resolve("openat") == 257)
    }

    @Test func anUnknownNameIsAnErrorNamingIt() {
        #expect(throws: SeccompError.unknownSyscall("reed")) { try SyscallFilter.resolve("reed") }
        let filter = SyscallFilter(defaultAction: .killProcess, rules: [
            SyscallRule("read", reason: "r"), SyscallRule("no_such_call", reason: "x"),
        ])
        #expect(throws: SeccompError.unknownSyscall("no_such_call")) { try filter.compile() }
        #expect(SeccompError.unknownSyscall("no_such_call").description == "seccomp: unknown syscall name \"no_such_call\"")
    }

    @Test func aSyscallOfAnotherArchitectureIsAnError() {
        // socketcall is i386's; libseccomp gives it a negative pseudo-number on x86-64.
        #expect(throws: SeccompError.notOnThisArchitecture("socketcall")) { try SyscallFilter.resolve("socketcall") }
        #expect(SeccompError.notOnThisArchitecture("socketcall").description
                == "seccomp: \"socketcall\" is not a syscall on this architecture")
    }

    @Test func malformedConditionsAreErrorsWithTheirText() {
        let badIndex = SyscallRule("ioctl", .argument(6, equals: 1), reason: "x")
        #expect(throws: SeccompError.argumentIndex(syscall: "ioctl", index: 6)) { try SyscallFilter.expand(badIndex) }
        #expect(SeccompError.argumentIndex(syscall: "ioctl", index: 6).description
                == "seccomp: rule for ioctl tests argument 6; arguments are 0 to 5")
        let empty = SyscallRule("ioctl", .argument(1, oneOf: []), reason: "x")
        #expect(throws: SeccompError.emptyValueSet(syscall: "ioctl", argument: 1)) { try SyscallFilter.expand(empty) }
        #expect(SeccompError.emptyValueSet(syscall: "ioctl", argument: 1).description
                == "seccomp: rule for ioctl allows argument 1 to be one of no values")
        let twice = SyscallRule("fcntl", .argument(1, equals: 3), .argument(1, equals: 4), reason: "x")
        #expect(throws: SeccompError.repeatedArgument(syscall: "fcntl", argument: 1)) { try SyscallFilter.expand(twice) }
        // Malformed rules fail the whole filter before libseccomp sees any of it.
        #expect(throws: SeccompError.argumentIndex(syscall: "ioctl", index: 6)) {
            try SyscallFilter(defaultAction: .trap, rules: [badIndex]).compile()
        }
    }

    @Test func libseccompFailuresNameTheStepAndTheErrno() {
        let e = SeccompError.libseccomp(step: "seccomp_load", errno: EPERM)
        #expect(e.description == "seccomp: seccomp_load failed: Operation not permitted (errno 1)")
    }

    @Test func argumentRulesExpandToOneLibseccompRulePerAlternative() throws {
        typealias C = SyscallFilter.Comparison
        #expect(try SyscallFilter.expand(SyscallRule("read", reason: "r")) == [[]])
        let ioctl = SyscallRule("ioctl", .argument(1, oneOf: [0xae80, 0xae81]), reason: "k")
        #expect(try SyscallFilter.expand(ioctl) == [
            [C(argument: 1, mask: .max, value: 0xae80)], [C(argument: 1, mask: .max, value: 0xae81)],
        ])
        let both = SyscallRule("x", .argument(0, oneOf: [1, 2]), .argument(2, masked: 4, equals: 0), reason: "x")
        #expect(try SyscallFilter.expand(both) == [
            [C(argument: 0, mask: .max, value: 1), C(argument: 2, mask: 4, value: 0)],
            [C(argument: 0, mask: .max, value: 2), C(argument: 2, mask: 4, value: 0)],
        ])
        let compiled = try SyscallFilter(defaultAction: .killProcess, rules: [ioctl, SyscallRule("read", reason: "r")]).compile()
        #expect(compiled.ruleCount == 3)
    }
}

@Suite struct SeccompProfileTests {
    static let kvmRun: UInt64 = 0xae80
    static var all: [SeccompProfile] {
        [.main, .deviceLoop, .vcpu(kvmRequests: [kvmRun]), .vcpu(kvmRequests: [kvmRun], readsOwnMemoryUse: true),
         .deviceLoop(disks: [DiskDescriptor(fd: 5, writable: false), DiskDescriptor(fd: 6, writable: true)], fallocateModes: [0x03, 0x11])]
    }

    @Test func everyProfileBuildsInEveryMode() throws {
        for profile in Self.all {
            for action in [SyscallFilter.Action.killProcess, .trap, .log] {
                let compiled = try profile.filter(action).compile()
                #expect(compiled.ruleCount >= profile.syscalls.count)
            }
        }
    }

    @Test func everyRuleSaysWhyAndNoSyscallIsListedTwiceWithoutConditions() {
        for profile in Self.all {
            for rule in profile.rules { #expect(!rule.reason.isEmpty, "\(profile.threadClass) \(rule.syscall)") }
            let plain = profile.rules.filter(\.conditions.isEmpty).map(\.syscall)
            #expect(Set(plain).count == plain.count, "\(profile.threadClass): \(plain)")
        }
    }

    @Test func onlyVCPUsMayIoctlAndOnlyWithTheRequestsGiven() {
        #expect(!SeccompProfile.main.syscalls.contains("ioctl"))
        #expect(!SeccompProfile.deviceLoop.syscalls.contains("ioctl"))
        let ioctl = SeccompProfile.vcpu(kvmRequests: [Self.kvmRun]).rules.filter { $0.syscall == "ioctl" }
        #expect(ioctl == [SyscallRule("ioctl", .argument(1, oneOf: [Self.kvmRun]), reason: ioctl.first?.reason ?? "")])
    }

    @Test func nothingOpensFilesExceptTheMemoryReport() {
        for profile in [SeccompProfile.main, .deviceLoop, .vcpu(kvmRequests: [Self.kvmRun])] {
            for name in ["open", "openat", "openat2", "execve", "execveat", "fork", "vfork", "clone", "clone3", "ptrace"] {
                #expect(!profile.syscalls.contains(name), "\(profile.threadClass) allows \(name)")
            }
        }
        let opens = SeccompProfile.vcpu(kvmRequests: [Self.kvmRun], readsOwnMemoryUse: true).rules.filter { $0.syscall == "openat" }
        #expect(opens.map(\.conditions) == [[.argument(2, equals: UInt64(O_RDONLY))]] && opens.allSatisfy(\.allows))
        // Elsewhere an open fails with ENOENT without running (glibc's probes), and is never allowed.
        for profile in [SeccompProfile.main, .deviceLoop, .vcpu(kvmRequests: [Self.kvmRun])] {
            let failing = profile.rules.filter { $0.syscall == "openat" }
            #expect(failing.count == 1 && failing.first?.failsWith == ENOENT && failing.first?.conditions == [])
        }
    }

    @Test func socketsAreUnixOnlyAndMemoryNeverExecutable() {
        for profile in Self.all {
            for rule in profile.rules where rule.syscall == "socket" {
                #expect(rule.conditions == [.argument(0, equals: UInt64(AF_UNIX))])
            }
            for rule in profile.rules where ["mmap", "mprotect"].contains(rule.syscall) {
                #expect(rule.conditions == [.argument(2, masked: UInt64(PROT_EXEC), equals: 0)])
            }
        }
        #expect(!SeccompProfile.main.syscalls.contains("socket"))
    }
}

/// virtio-blk's I/O on the device thread: only on the disks' own descriptors, writes only on
/// writable ones, fallocate only in the two modes the device uses.
@Suite struct DiskProfileTests {
    /// FALLOC_FL_PUNCH_HOLE | KEEP_SIZE and FALLOC_FL_ZERO_RANGE | KEEP_SIZE (linux/falloc.h).
    static let modes: [Int32] = [0x03, 0x11]

    @Test func withoutDisksTheDeviceThreadHasNoFileIO() {
        for name in ["pread64", "pwrite64", "fdatasync", "fallocate", "preadv", "pwritev", "readv", "writev"] {
            #expect(!SeccompProfile.deviceLoop.syscalls.contains(name))
            #expect(!SeccompProfile.main.syscalls.contains(name))
        }
        #expect(SeccompProfile.deviceLoop(disks: [], fallocateModes: Self.modes) == SeccompProfile.deviceLoop)
    }

    @Test func readsOnEveryDiskWritesOnlyOnWritableOnes() {
        let profile = SeccompProfile.deviceLoop(disks: [DiskDescriptor(fd: 7, writable: false), DiskDescriptor(fd: 9, writable: true)],
                                                fallocateModes: Self.modes)
        func conditions(_ name: String) -> [[ArgumentCondition]] { profile.rules.filter { $0.syscall == name }.map(\.conditions) }
        #expect(conditions("preadv") == [[.argument(0, oneOf: [7, 9])]])
        #expect(conditions("pread64").isEmpty)
        #expect(conditions("pwrite64") == [[.argument(0, oneOf: [9])]])
        #expect(conditions("fdatasync") == [[.argument(0, oneOf: [9])]])
        #expect(conditions("fallocate") == [[.argument(0, oneOf: [9]), .argument(1, oneOf: [0x03, 0x11])]])
        #expect(profile.rules.dropLast(4) == SeccompProfile.deviceLoop.rules)  // the rest is unchanged
        for action in [SyscallFilter.Action.killProcess, .trap, .log] {
            #expect(throws: Never.self) { _ = try profile.filter(action).compile() }
        }
    }

    @Test func readOnlyDisksGetNoWriteCalls() {
        let profile = SeccompProfile.deviceLoop(disks: [DiskDescriptor(fd: 5, writable: false)], fallocateModes: Self.modes)
        #expect(profile.syscalls.suffix(1) == ["preadv"])
        for name in ["pwrite64", "fdatasync", "fallocate"] { #expect(!profile.syscalls.contains(name)) }
    }

    /// fallocate's rule expands to one libseccomp rule per (descriptor, mode) pair.
    @Test func fallocateExpandsPerDescriptorAndMode() throws {
        let profile = SeccompProfile.deviceLoop(disks: [DiskDescriptor(fd: 5, writable: true), DiskDescriptor(fd: 6, writable: true)],
                                                fallocateModes: Self.modes)
        let rule = try #require(profile.rules.first { $0.syscall == "fallocate" })
        #expect(try SyscallFilter.expand(rule).count == 4)
    }
}
