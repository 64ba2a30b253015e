import Foundation
import Glibc
import LinuxBoot
import MachineConfig
import Testing
import VMM

/// A synthetic bzImage with the setup-header fields the loader reads (a copy of the helper in
/// LinuxBootTests, since test targets cannot share code). With the defaults the kernel needs
/// 0x100_0000 + 0x100_0000 (preferred address + init_size) + 16 MiB of margin = 48 MiB.
private func makeBzImage(payload: Int = 8192, initSize: UInt32 = 0x100_0000,
                         prefAddress: UInt64 = 0x100_0000, cmdlineSize: UInt32 = 2047) -> [UInt8] {
    let setupSects = 4
    var b = [UInt8](repeating: 0, count: (setupSects + 1) * 512 + payload)
    func put<T: FixedWidthInteger>(_ v: T, _ o: Int) {
        withUnsafeBytes(of: v.littleEndian) { for (i, x) in $0.enumerated() { b[o + i] = x } }
    }
    put(UInt8(setupSects), 0x1f1)
    put(UInt16(0xAA55), 0x1fe)
    put(UInt8(0xeb), 0x200)           // jmp short
    put(UInt8(0x66), 0x201)           // header ends at 0x268
    put(UInt32(0x5372_6448), 0x202)   // "HdrS"
    put(UInt16(0x020f), 0x206)        // protocol 2.15
    put(UInt8(0x01), 0x211)           // LOADED_HIGH
    put(UInt32(0x7fff_ffff), 0x22c)   // initrd_addr_max
    put(UInt32(0x20_0000), 0x230)     // kernel_alignment
    put(UInt8(1), 0x234)              // relocatable
    put(UInt16(0x7f), 0x236)          // xloadflags: XLF_KERNEL_64 and friends
    put(cmdlineSize, 0x238)
    put(prefAddress, 0x258)
    put(initSize, 0x260)
    return b
}

/// A fresh directory under /tmp, removed when the test ends.
private final class Scratch {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "momin-preflight-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let file = path + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return file
    }
}

/// The VMMError that `check` throws, for matching on its case.
private func preflightError(_ config: MachineConfiguration) -> VMMError? {
    #expect(throws: VMMError.self) { try Preflight.check(config) }
}

@Suite struct PreflightTests {
    @Test func missingKernelNamesThePath() throws {
        let scratch = try Scratch()
        let path = scratch.path + "/vmlinuz"
        let error = try #require(preflightError(MachineConfiguration(kernelPath: path)))
        guard case .fileUnreadable(let role, let named, let reason) = error else {
            Issue.record("unexpected \(error)"); return
        }
        #expect(role == "kernel" && named == path && reason == "No such file or directory")
        #expect(error.description == "cannot read kernel \(path): No such file or directory")
        #expect(error.isUsageError)
    }

    @Test func directoryIsNotARegularFile() throws {
        let scratch = try Scratch()
        let error = try #require(preflightError(MachineConfiguration(kernelPath: scratch.path)))
        #expect(error.description == "cannot read kernel \(scratch.path): not a regular file")
    }

    @Test func junkIsNotABzImage() throws {
        let scratch = try Scratch()
        let path = try scratch.file("junk", [UInt8](repeating: 0x5a, count: 4096))
        let error = try #require(preflightError(MachineConfiguration(kernelPath: path)))
        guard case .boot(let boot) = error else { Issue.record("unexpected \(error)"); return }
        #expect(boot == .notBzImage("\(path): no 0xAA55 boot signature at 0x1fe"))
        #expect(error.description == "not a bzImage: \(path): no 0xAA55 boot signature at 0x1fe")
    }

    @Test(arguments: [0, 255, -1])
    func vcpuCountOutOfRange(vcpus: Int) throws {
        let error = try #require(preflightError(MachineConfiguration(kernelPath: "/nonexistent", vcpus: vcpus)))
        guard case .invalidVCPUCount(let requested, let limit) = error else { Issue.record("unexpected \(error)"); return }
        #expect(requested == vcpus && limit == 254)
    }

    @Test func vcpuCountLimitIsInclusive() throws {
        // 254 passes the count check and fails on the (missing) kernel instead.
        let error = try #require(preflightError(MachineConfiguration(kernelPath: "/nonexistent", vcpus: 254)))
        guard case .fileUnreadable = error else { Issue.record("unexpected \(error)"); return }
    }

    @Test(arguments: [UInt64(0), MachineConfiguration.maximumMemoryMiB + 1])
    func memoryOutOfRange(memoryMiB: UInt64) throws {
        let error = try #require(preflightError(MachineConfiguration(kernelPath: "/nonexistent", memoryMiB: memoryMiB)))
        guard case .invalidMemory = error else { Issue.record("unexpected \(error)"); return }
        #expect(error.description.hasPrefix("--memory \(memoryMiB) MiB is out of range"))
    }

    @Test func validKernelPassesWithJustEnoughMemory() throws {
        let scratch = try Scratch()
        let kernel = try scratch.file("bzImage", makeBzImage(payload: 8192))
        let initrd = try scratch.file("initrd", [UInt8](repeating: 7, count: 1 << 20))
        let payload = try Preflight.check(MachineConfiguration(kernelPath: kernel, initrdPath: initrd, memoryMiB: 49))
        #expect(payload.kernel.payloadSize == 8192)
        #expect(payload.initrdFile?.size == 1 << 20)
        #expect(payload.initrdFile?.path == initrd)
        #expect(try Preflight.check(MachineConfiguration(kernelPath: kernel, memoryMiB: 48)).initrdFile == nil)
    }

    @Test func tooLittleMemoryForTheKernel() throws {
        let scratch = try Scratch()
        let kernel = try scratch.file("bzImage", makeBzImage())
        let error = try #require(preflightError(MachineConfiguration(kernelPath: kernel, memoryMiB: 47)))
        guard case .boot(let boot) = error else { Issue.record("unexpected \(error)"); return }
        #expect(boot == .memoryTooSmall(requestedMiB: 47, requiredMiB: 48))
        #expect(error.description == "--memory 47 MiB is too small: this kernel and initrd need at least 48 MiB")
    }

    /// When the kernel alone fits, the initrd is what is too large; when it does not, the
    /// message is about memory and counts the initrd in.
    @Test func tooLittleMemoryForTheInitrd() throws {
        let scratch = try Scratch()
        let kernel = try scratch.file("bzImage", makeBzImage())
        let initrd = try scratch.file("initrd", [UInt8](repeating: 0, count: 2 << 20))
        let tight = try #require(preflightError(MachineConfiguration(kernelPath: kernel, initrdPath: initrd, memoryMiB: 49)))
        guard case .boot(let boot) = tight else { Issue.record("unexpected \(tight)"); return }
        #expect(boot == .initrdTooLarge(size: 2 << 20, availableBytes: 1 << 20))
        #expect(tight.description.hasPrefix("initrd (2 MiB) does not fit"))
        #expect(tight.description.contains("(1 MiB free)"))

        let small = try #require(preflightError(MachineConfiguration(kernelPath: kernel, initrdPath: initrd, memoryMiB: 40)))
        guard case .boot(let boot) = small else { Issue.record("unexpected \(small)"); return }
        #expect(boot == .memoryTooSmall(requestedMiB: 40, requiredMiB: 50))
    }

    @Test func missingInitrdNamesItsRole() throws {
        let scratch = try Scratch()
        let kernel = try scratch.file("bzImage", makeBzImage())
        let path = scratch.path + "/initrd.img"
        let error = try #require(preflightError(MachineConfiguration(kernelPath: kernel, initrdPath: path)))
        #expect(error.description == "cannot read initrd \(path): No such file or directory")
    }

    @Test func commandLineLongerThanTheKernelAccepts() throws {
        let scratch = try Scratch()
        let kernel = try scratch.file("bzImage", makeBzImage(cmdlineSize: 255))
        let fits = String(repeating: "a", count: 255)
        #expect(throws: Never.self) { try Preflight.check(MachineConfiguration(kernelPath: kernel, commandLine: fits)) }
        let error = try #require(preflightError(MachineConfiguration(kernelPath: kernel, commandLine: fits + "a")))
        guard case .boot(let boot) = error else { Issue.record("unexpected \(error)"); return }
        #expect(boot == .commandLineTooLong(length: 256, max: 255))

        // A kernel that claims more than the boot page holds is held to the page.
        let greedy = try scratch.file("greedy", makeBzImage(cmdlineSize: 0x10_0000))
        let huge = String(repeating: "b", count: 0x10000)
        let capped = try #require(preflightError(MachineConfiguration(kernelPath: greedy, commandLine: huge)))
        guard case .boot(let cappedBoot) = capped else { Issue.record("unexpected \(capped)"); return }
        #expect(cappedBoot == .commandLineTooLong(length: 0x10000, max: 0xffff))
    }
}

/// Disks are opened at preflight, as momin-vmm's filters will forbid it later: each a regular
/// file (or block device) of whole, non-zero sectors, read-only or read-write as configured.
@Suite struct PreflightDiskTests {
    private static func machine(_ scratch: Scratch, _ disks: [DiskConfiguration]) throws -> MachineConfiguration {
        var config = MachineConfiguration(kernelPath: try scratch.file("bzImage", makeBzImage()), memoryMiB: 64)
        config.disks = disks
        return config
    }

    private static func diskError(_ config: MachineConfiguration) -> (path: String, reason: String)? {
        guard case .invalidDisk(let path, let reason)? = preflightError(config) else { return nil }
        return (path, reason)
    }

    @Test func disksAreOpenedInOrderWithTheirModes() throws {
        let scratch = try Scratch()
        let a = try scratch.file("a.img", [UInt8](repeating: 1, count: 4096))
        let b = try scratch.file("b.img", [UInt8](repeating: 2, count: 1024))
        let payload = try Preflight.check(try Self.machine(scratch, [DiskConfiguration(path: a), DiskConfiguration(path: b, readOnly: false)]))
        #expect(payload.disks.map(\.size) == [4096, 1024])
        #expect(payload.disks.map(\.isWritable) == [false, true])
        for (disk, mode) in zip(payload.disks, [O_RDONLY, O_RDWR]) {
            #expect(fcntl(disk.fd, F_GETFL) & O_ACCMODE == mode)
            #expect(fcntl(disk.fd, F_GETFD) & FD_CLOEXEC != 0)
        }
    }

    @Test func aMissingDiskIsNamed() throws {
        let scratch = try Scratch()
        let path = scratch.path + "/nope.img"
        let error = try #require(Self.diskError(try Self.machine(scratch, [DiskConfiguration(path: path)])))
        #expect(error.path == path && error.reason == "cannot open it read-only: No such file or directory")
        #expect(preflightError(try Self.machine(scratch, [DiskConfiguration(path: path)]))?.description
                == "disk \(path): cannot open it read-only: No such file or directory")
        #expect(preflightError(try Self.machine(scratch, [DiskConfiguration(path: path)]))?.isUsageError == true)
    }

    @Test func aDirectoryIsRefused() throws {
        let scratch = try Scratch()
        let ro = try #require(Self.diskError(try Self.machine(scratch, [DiskConfiguration(path: scratch.path)])))
        #expect(ro.path == scratch.path && ro.reason == "it is a directory")
        let rw = try #require(Self.diskError(try Self.machine(scratch, [DiskConfiguration(path: scratch.path, readOnly: false)])))
        #expect(rw.reason == "cannot open it read-write: Is a directory")
    }

    @Test func aCharacterDeviceIsRefused() throws {
        let scratch = try Scratch()
        let error = try #require(Self.diskError(try Self.machine(scratch, [DiskConfiguration(path: "/dev/null")])))
        #expect(error.reason == "not a regular file or block device")
    }

    @Test(arguments: [0, 511, 1000, 4097])
    func aSizeThatIsNotWholeSectorsIsRefused(size: Int) throws {
        let scratch = try Scratch()
        let path = try scratch.file("odd.img", [UInt8](repeating: 0, count: size))
        let error = try #require(Self.diskError(try Self.machine(scratch, [DiskConfiguration(path: path)])))
        #expect(error.path == path)
        #expect(error.reason == (size == 0 ? "it is empty" : "its size, \(size) bytes, is not a multiple of 512"))
    }

    @Test func theSameFileTwiceIsRefusedEvenUnderAnotherName() throws {
        let scratch = try Scratch()
        let path = try scratch.file("a.img", [UInt8](repeating: 0, count: 512))
        let link = scratch.path + "/link.img"
        #expect(symlink(path, link) == 0)
        let error = try #require(Self.diskError(try Self.machine(scratch, [DiskConfiguration(path: path), DiskConfiguration(path: link)])))
        #expect(error.path == link && error.reason == "the same file as disk \(path)")
    }

    @Test func aSerialOverTwentyBytesIsRefused() throws {
        let scratch = try Scratch()
        let path = try scratch.file("a.img", [UInt8](repeating: 0, count: 512))
        let serial = String(repeating: "s", count: 21)
        let error = try #require(Self.diskError(try Self.machine(scratch, [DiskConfiguration(path: path, serial: serial)])))
        #expect(error.path == path && error.reason == "serial '\(serial)' is longer than 20 bytes")
    }

    /// momin passes each disk as a descriptor it opened in the disk's mode (fd=N): taken as it
    /// is, and refused when its mode is not the disk's.
    @Test func aDiskOnAnInheritedDescriptorIsTakenOnlyInItsMode() throws {
        let scratch = try Scratch()
        let path = try scratch.file("a.img", [UInt8](repeating: 7, count: 2048))
        let reader = open(path, O_RDONLY), writer = open(path, O_RDWR)
        #expect(reader >= 0 && writer >= 0)
        let payload = try Preflight.check(try Self.machine(scratch, [DiskConfiguration(descriptor: reader, serial: "e")]))
        #expect(payload.disks.map(\.size) == [2048] && payload.disks.map(\.fd) == [reader] && payload.disks.map(\.isWritable) == [false])
        #expect(fcntl(reader, F_GETFD) & FD_CLOEXEC != 0)
        let writable = try #require(Self.diskError(try Self.machine(scratch, [DiskConfiguration(descriptor: writer)])))
        #expect(writable.path == "fd=\(writer)" && writable.reason == "descriptor \(writer) is not open read-only")
        let second = open(path, O_RDONLY)
        let readOnly = try #require(Self.diskError(try Self.machine(scratch, [DiskConfiguration(descriptor: second, readOnly: false)])))
        #expect(readOnly.reason == "descriptor \(second) is not open read-write")
        let closed = try #require(Self.diskError(try Self.machine(scratch, [DiskConfiguration(descriptor: 1000)])))
        #expect(closed.reason == "descriptor 1000 is not open: Bad file descriptor")
    }

    @Test func oneBadDiskFailsTheWholePreflight() throws {
        // The first disk is fine, the second is not: preflight fails as a whole.
        let scratch = try Scratch()
        let good = try scratch.file("good.img", [UInt8](repeating: 0, count: 512))
        let error = try #require(Self.diskError(try Self.machine(scratch, [DiskConfiguration(path: good), DiskConfiguration(path: "/dev/zero")])))
        #expect(error.path == "/dev/zero")
    }
}
