import Testing
@testable import MachineConfig

/// `--disk PATH[,ro|,rw][,serial=S][,bps=N][,iops=N][,bps-burst=N][,iops-burst=N]`.
@Suite struct DiskArgumentsTests {
    typealias SpecError = DiskConfiguration.SpecError

    @Test func aPathAloneIsAReadOnlyDiskWithNothingElse() throws {
        #expect(try DiskConfiguration.parse("/img/a.raw") == DiskConfiguration(path: "/img/a.raw"))
        #expect(try DiskConfiguration.parse("/img/a.raw").readOnly)
    }

    @Test func everyKeyIsRead() throws {
        let disk = try DiskConfiguration.parse("/d,rw,serial=data 01,bps=1048576,iops=200,bps-burst=4194304,iops-burst=50")
        #expect(disk == DiskConfiguration(path: "/d", readOnly: false, serial: "data 01",
                                          bytesPerSecond: RateLimit(perSecond: 1 << 20, burst: 4 << 20),
                                          operationsPerSecond: RateLimit(perSecond: 200, burst: 50)))
        #expect(try DiskConfiguration.parse("/d,iops=9,ro").operationsPerSecond == RateLimit(perSecond: 9, burst: 9))
    }

    @Test func doubledCommasAreCommasInsideAPathOrSerial() throws {
        let disk = try DiskConfiguration.parse("/a,,b/c,,,rw,serial=x,,y")
        #expect(disk.path == "/a,b/c," && !disk.readOnly && disk.serial == "x,y")
        #expect(disk.spec == "/a,,b/c,,,rw,serial=x,,y")
        #expect(try DiskConfiguration.parse(disk.spec) == disk)
    }

    @Test func renderThenParseGivesTheSameDisks() throws {
        var config = MachineConfiguration(kernelPath: "/k")
        config.disks = [
            DiskConfiguration(path: "/vm/disk0"),
            DiskConfiguration(path: "/vm/disk,1", readOnly: false, serial: "S/N=7,ok", bytesPerSecond: RateLimit(perSecond: 10),
                              operationsPerSecond: RateLimit(perSecond: 5, burst: 20)),
            DiskConfiguration(path: "=x", readOnly: false, bytesPerSecond: RateLimit(perSecond: 3, burst: 1)),
        ]
        let rendered = VMMArguments.render(config, timeout: nil)
        #expect(rendered.filter { $0 == "--disk" }.count == 3)
        let parsed = try VMMArguments.parse(rendered)
        #expect(parsed.configuration == config)
        #expect(parsed.configuration.disks.map(\.path) == ["/vm/disk0", "/vm/disk,1", "=x"])  // order kept
        #expect(config.disks[1].spec == "/vm/disk,,1,rw,serial=S/N=7,,ok,bps=10,iops=5,iops-burst=20")
        #expect(config.disks[0].spec == "/vm/disk0,ro")
    }

    @Test func noDisksRenderNoOption() throws {
        let config = MachineConfiguration(kernelPath: "/k")
        #expect(!VMMArguments.render(config, timeout: nil).contains("--disk"))
        #expect(try VMMArguments.parse(["--kernel", "/k"]).configuration.disks == [])
    }

    @Test(arguments: [
        ("", SpecError.emptyPath), (",rw", .emptyPath),
        ("/d,readonly", .unknownKey("readonly")), ("/d,", .unknownKey("")), ("/d,ro=1", .unknownKey("ro=1")),
        ("/d,serial", .unknownKey("serial")), ("/d,cache=none", .unknownKey("cache=none")),
        ("/d,ro,rw", .conflictingModes), ("/d,rw,ro", .conflictingModes), ("/d,rw,rw", .repeatedKey("rw")),
        ("/d,bps=1,bps=2", .repeatedKey("bps")), ("/d,serial=a,serial=b", .repeatedKey("serial")),
        ("/d,bps=0", .badNumber(key: "bps", value: "0")), ("/d,iops=-1", .badNumber(key: "iops", value: "-1")),
        ("/d,bps=1k", .badNumber(key: "bps", value: "1k")), ("/d,iops=", .badNumber(key: "iops", value: "")),
        ("/d,bps=18446744073709551616", .badNumber(key: "bps", value: "18446744073709551616")),
        ("/d,serial=123456789012345678901", .serialTooLong("123456789012345678901", bytes: 21)),
        ("/d,serial=ééééééééééé", .serialTooLong("ééééééééééé", bytes: 22)),
        ("/d,serial=", .badSerial("")), ("/d,serial=tab\there", .badSerial("tab\there")), ("/d,serial=é", .badSerial("é")),
        ("/d,bps-burst=5", .burstWithoutRate("bps-burst")), ("/d,iops-burst=5,bps=1", .burstWithoutRate("iops-burst")),
    ])
    func eachMistakeIsNamed(spec: String, error: SpecError) {
        #expect(throws: error) { try DiskConfiguration.parse(spec) }
        #expect(throws: VMMArguments.ParseError.badDisk(spec: spec, error)) {
            try VMMArguments.parse(["--kernel", "/k", "--disk", spec])
        }
    }

    @Test func theMessagesSayWhatWasWrong() {
        func message(_ arguments: [String]) -> String {
            do { _ = try VMMArguments.parse(["--kernel", "/k"] + arguments); return "" } catch { return error.description }
        }
        #expect(message(["--disk", "/d,fast"])
                == "--disk /d,fast: unknown key 'fast' (expected ro, rw, serial=, bps=, iops=, bps-burst=, iops-burst=)")
        #expect(message(["--disk", "/d,bps=lots"]) == "--disk /d,bps=lots: bps=lots is not a whole number from 1 to 18446744073709551615")
        #expect(message(["--disk", "/d,serial=" + String(repeating: "x", count: 21)])
                == "--disk /d,serial=\(String(repeating: "x", count: 21)): serial '\(String(repeating: "x", count: 21))' is 21 bytes; at most 20")
        #expect(message(["--disk", "/d,ro,rw"]) == "--disk /d,ro,rw: both ro and rw")
        #expect(message(["--disk", "/d,iops-burst=3"]) == "--disk /d,iops-burst=3: iops-burst needs iops= as well")
        #expect(message(["--disk", "/a,serial=x", "--disk", "/b,serial=x"]) == "--disk serial=x is given to two disks")
        #expect(message(["--disk", "/a", "--disk", "/a,rw"]) == "--disk /a is given twice")
        #expect(message(["--disk"]) == "--disk needs a value")
        #expect(message(Array((0..<9).flatMap { ["--disk", "/d\($0)"] })) == "--disk is given more than 8 times (at most 8 disks)")
    }

    @Test func eightDisksAreAllowedAndANinthIsNot() throws {
        let eight = (0..<8).flatMap { ["--disk", "/d\($0),serial=s\($0)"] }
        #expect(try VMMArguments.parse(["--kernel", "/k"] + eight).configuration.disks.count == 8)
        #expect(MachineConfiguration.maximumDisks == 8)
        #expect(throws: VMMArguments.ParseError.tooManyDisks(limit: 8)) {
            try VMMArguments.parse(["--kernel", "/k"] + eight + ["--disk", "/d8"])
        }
    }

    @Test func disksWithoutASerialMayShareTheLackOfOne() throws {
        #expect(try VMMArguments.parse(["--kernel", "/k", "--disk", "/a", "--disk", "/b"]).configuration.disks.count == 2)
        #expect(throws: VMMArguments.ParseError.duplicateDiskSerial("x")) {
            try VMMArguments.parse(["--kernel", "/k", "--disk", "/a,serial=x", "--disk", "/b", "--disk", "/c,serial=x"])
        }
    }

    @Test func theUsageMentionsDisk() {
        #expect(VMMArguments.usage.contains("--disk PATH[,ro|,rw][,serial=S][,bps=N][,iops=N]"))
    }
}

@Suite struct DiskFilesTests {
    @Test func disksAreMachineFilesWritableWhenTheDiskIs() {
        var config = MachineConfiguration(kernelPath: "/k")
        config.disks = [DiskConfiguration(path: "/a"), DiskConfiguration(path: "/b", readOnly: false)]
        #expect(config.files == [MachineFile(.kernel, path: "/k"), MachineFile(.disk(0), path: "/a"),
                                 MachineFile(.disk(1), path: "/b", writable: true)])
        #expect(config.files.map(\.role.description) == ["kernel", "disk0", "disk1"])
    }

    /// A disk on an inherited descriptor is no file of the machine's: the jail binds nothing
    /// for it and relocating leaves it as it is; on the command line it is `fd=N`.
    @Test func aDescriptorDiskIsNoFileAndRoundTripsAsFdN() throws {
        var config = MachineConfiguration(kernelPath: "/k")
        config.disks = [DiskConfiguration(path: "/a"), DiskConfiguration(descriptor: 10, readOnly: false, serial: "s"), DiskConfiguration(descriptor: 11)]
        #expect(config.files == [MachineFile(.kernel, path: "/k"), MachineFile(.disk(0), path: "/a")])
        let moved = config.relocatingFiles { "/vm/\($0.role)" }
        #expect(moved.disks.map(\.path) == ["/vm/disk0", "fd=10", "fd=11"] && moved.disks.map(\.descriptor) == [nil, 10, 11])
        #expect(config.disks[1].spec == "fd=10,rw,serial=s")
        #expect(try VMMArguments.parse(VMMArguments.render(config, timeout: nil)).configuration == config)
        // Only 3 to 1023 is a descriptor; anything else is a path.
        for path in ["fd=2", "fd=1024", "fd=x", "fd=", "./fd=10", "fd=+10"] {
            #expect(try DiskConfiguration.parse(path).descriptor == nil, "\(path)")
        }
        #expect(try DiskConfiguration.parse("fd=3").descriptor == 3)
    }

    @Test func relocatingMovesEachDiskAndKeepsTheRest() {
        var config = MachineConfiguration(kernelPath: "/k", initrdPath: "/i")
        config.disks = [DiskConfiguration(path: "/a", serial: "s"), DiskConfiguration(path: "/b", readOnly: false)]
        let moved = config.relocatingFiles { "/vm/\($0.role)" }
        var expected = config
        expected.kernelPath = "/vm/kernel"
        expected.initrdPath = "/vm/initrd"
        expected.disks[0].path = "/vm/disk0"
        expected.disks[1].path = "/vm/disk1"
        #expect(moved == expected)
    }
}
