import Testing
@testable import MachineConfig

@Suite struct VMMArgumentsTests {
    @Test func renderThenParseGivesTheSameMachine() throws {
        var config = MachineConfiguration(kernelPath: "/k", initrdPath: "/i", commandLine: "console=ttyS0 a=\"b c\"",
                                          vcpus: 2, memoryMiB: 512, kvmPath: "/dev/kvm")
        config.vsock = VsockConfiguration(guestCID: 7, socketPath: "/run/momin/vm.x/vsock.sock")
        config.entropySeed = (0..<32).map { UInt8($0 * 9 & 0xff) }
        config.hostCPUs = [3, 1]
        let parsed = try VMMArguments.parse(VMMArguments.render(config, timeout: 12.5, reportMemory: true))
        #expect(parsed.configuration == config)
        #expect(parsed.timeout == 12.5)
        #expect(parsed.reportMemory)
    }

    @Test func defaultsWithoutOptionalParts() throws {
        let parsed = try VMMArguments.parse(["--kernel", "/k"])
        #expect(parsed.configuration == MachineConfiguration(kernelPath: "/k"))
        #expect(parsed.timeout == nil)
        #expect(!parsed.reportMemory)
        #expect(try VMMArguments.parse(["--kernel", "/k", "--timeout", "0"]).timeout == nil)
    }

    @Test func badArgumentsAreNamed() {
        #expect(throws: VMMArguments.ParseError.missingKernel) { try VMMArguments.parse([]) }
        #expect(throws: VMMArguments.ParseError.unknownOption("--bogus")) { try VMMArguments.parse(["--kernel", "/k", "--bogus"]) }
        #expect(throws: VMMArguments.ParseError.missingValue("--memory")) { try VMMArguments.parse(["--kernel", "/k", "--memory"]) }
        #expect(throws: VMMArguments.ParseError.badNumber(option: "--vcpus", value: "two")) {
            try VMMArguments.parse(["--kernel", "/k", "--vcpus", "two"])
        }
        #expect(throws: VMMArguments.ParseError.self) { try VMMArguments.parse(["--kernel", "/k", "--timeout", "-1"]) }
        for list in ["", "1,", "a", "-1", "1,,2", "4096"] {
            #expect(throws: VMMArguments.ParseError.badCPUList(list)) { try VMMArguments.parse(["--kernel", "/k", "--host-cpus", list]) }
        }
        for seed in ["", "00", String(repeating: "0", count: 63), String(repeating: "0", count: 65), String(repeating: "g", count: 64)] {
            #expect(throws: VMMArguments.ParseError.badSeed(seed)) { try VMMArguments.parse(["--kernel", "/k", "--entropy-seed", seed]) }
        }
    }

    @Test func entropySeedsAreSixtyFourHexDigits() {
        let text = "00112233445566778899AABBCCDDEEFF" + "0123456789abcdef0123456789abcdef"
        let bytes = EntropySeed.parse(text)
        #expect(bytes?.count == 32)
        #expect(bytes?.prefix(3) == [0x00, 0x11, 0x22])
        #expect(bytes?[15] == 0xff)
        #expect(bytes.map(EntropySeed.hex) == text.lowercased())
    }
}

@Suite struct VMMSeccompArgumentsTests {
    @Test func seccompDefaultsToKillAndParsesEachMode() throws {
        #expect(try VMMArguments.parse(["--kernel", "/k"]).seccomp == .kill)
        for mode in ["kill", "trap", "log", "off"] {
            #expect(try VMMArguments.parse(["--kernel", "/k", "--seccomp", mode]).seccomp.rawValue == mode)
        }
        #expect(throws: VMMArguments.ParseError.badSeccompMode("none")) {
            try VMMArguments.parse(["--kernel", "/k", "--seccomp", "none"])
        }
        let config = MachineConfiguration(kernelPath: "/k")
        #expect(try VMMArguments.parse(VMMArguments.render(config, timeout: nil, seccomp: .trap)).seccomp == .trap)
        #expect(!VMMArguments.render(config, timeout: nil).contains("--seccomp"))
    }
}

@Suite struct VMMPreflightAndHelpArgumentsTests {
    @Test func preflightRoundTrips() throws {
        let config = MachineConfiguration(kernelPath: "/k")
        #expect(try !VMMArguments.parse(VMMArguments.render(config, timeout: nil)).preflightOnly)
        #expect(try VMMArguments.parse(VMMArguments.render(config, timeout: nil, preflightOnly: true)).preflightOnly)
    }

    @Test func theLivenessDescriptorRoundTrips() throws {
        let config = MachineConfiguration(kernelPath: "/k")
        #expect(try VMMArguments.parse(VMMArguments.render(config, timeout: nil, livenessFD: 3)).livenessFD == 3)
        #expect(try VMMArguments.parse(VMMArguments.render(config, timeout: nil)).livenessFD == nil)
        #expect(throws: VMMArguments.ParseError.badDescriptor("2")) { try VMMArguments.parse(["--kernel", "/k", "--liveness-fd", "2"]) }
    }

    @Test func helpIsAskedForAnywhereOnTheLine() {
        for line in [["--help"], ["-h"], ["--kernel", "/k", "--help"], ["--vcpus", "2", "-h", "--bogus"]] {
            #expect(throws: VMMArguments.ParseError.helpRequested) { try VMMArguments.parse(line) }
        }
        #expect(VMMArguments.ParseError.helpRequested.description.hasPrefix("usage: momin-vmm --kernel PATH"))
    }
}

@Suite struct MachineFilesTests {
    @Test func kernelAloneOrWithAnInitrd() {
        #expect(MachineConfiguration(kernelPath: "/k").files == [MachineFile(.kernel, path: "/k")])
        #expect(MachineConfiguration(kernelPath: "/k", initrdPath: "/i").files
                == [MachineFile(.kernel, path: "/k"), MachineFile(.initrd, path: "/i")])
    }

    @Test func relocatingMovesEveryFileAndNothingElse() {
        var config = MachineConfiguration(kernelPath: "/boot/k", initrdPath: "/img/i", vcpus: 2, memoryMiB: 512)
        config.vsock = VsockConfiguration(socketPath: "/run/x")
        let moved = config.relocatingFiles { "/vm/\($0.role)" }
        #expect(moved.files.map(\.path) == ["/vm/kernel", "/vm/initrd"])
        var expected = config
        expected.kernelPath = "/vm/kernel"
        expected.initrdPath = "/vm/initrd"
        #expect(moved == expected)
        #expect(MachineConfiguration(kernelPath: "/k").relocatingFiles { "/vm/\($0.role)" }.initrdPath == nil)
    }
}
