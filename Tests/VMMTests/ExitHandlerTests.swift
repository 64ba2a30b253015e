import Devices
import KVM
import POSIX
import Testing
import VMM

/// A device whose reads count up (so repeated reads are told apart from a copied one) and
/// which records every access.
private final class CountingDevice: BusDevice, @unchecked Sendable {
    private let lock = Lock()
    private var next: UInt8
    private var readLog: [String] = []
    private var writeLog: [String] = []
    init(first: UInt8) { next = first }

    var reads: [String] { lock.withLock { readLog } }
    var writes: [String] { lock.withLock { writeLog } }

    func read(offset: UInt64, into data: inout [UInt8]) {
        lock.withLock {
            readLog.append("0x\(String(offset, radix: 16))/\(data.count)")
            for i in data.indices { data[i] = next; next &+= 1 }
        }
    }
    func write(offset: UInt64, data: [UInt8]) {
        lock.withLock { writeLog.append("0x\(String(offset, radix: 16))=\(data)") }
    }
}

/// COM1-like ports at 0x3f8 and an MMIO window at 0xd000_0000; a second port device at
/// 0x1000 and MMIO device at 0x1000 catch exits sent to the wrong bus.
private struct Rig {
    let serial = CountingDevice(first: 0x10)
    let ports1000 = CountingDevice(first: 0x80)
    let virtio = CountingDevice(first: 0x40)
    let mmio1000 = CountingDevice(first: 0xc0)
    let handler: ExitHandler

    init() throws {
        var portIO = Bus(), mmio = Bus()
        try portIO.insert(serial, base: 0x3f8, length: 8)
        try portIO.insert(ports1000, base: 0x1000, length: 0x100)
        try mmio.insert(virtio, base: 0xd000_0000, length: 0x1000)
        try mmio.insert(mmio1000, base: 0x1000, length: 0x100)
        handler = ExitHandler(portIO: portIO, mmio: mmio)
    }
}

@Suite struct ExitHandlerTests {
    @Test func portInputReadsTheDevice() throws {
        let rig = try Rig()
        #expect(rig.handler.handle(.ioIn(port: 0x3fd, size: 1, count: 1)) == .resume(input: [0x10]))
        #expect(rig.serial.reads == ["0x5/1"])
    }

    @Test func stringInputReadsThePortCountTimes() throws {
        let rig = try Rig()
        #expect(rig.handler.handle(.ioIn(port: 0x3f8, size: 2, count: 3))
                == .resume(input: [0x10, 0x11, 0x12, 0x13, 0x14, 0x15]))
        #expect(rig.serial.reads == ["0x0/2", "0x0/2", "0x0/2"])
    }

    @Test func unclaimedPortsReadAllOnes() throws {
        let rig = try Rig()
        #expect(rig.handler.handle(.ioIn(port: 0x80, size: 4, count: 1)) == .resume(input: [0xff, 0xff, 0xff, 0xff]))
        #expect(rig.handler.handle(.ioIn(port: 0x3f7, size: 1, count: 3)) == .resume(input: [0xff, 0xff, 0xff]))
        #expect(rig.serial.reads.isEmpty)
    }

    @Test func portOutputWritesEachElementInOrder() throws {
        let rig = try Rig()
        #expect(rig.handler.handle(.ioOut(port: 0x3f9, size: 1, data: [0x02])) == .resume(input: nil))
        #expect(rig.handler.handle(.ioOut(port: 0x3f8, size: 1, data: Array("ok".utf8))) == .resume(input: nil))
        #expect(rig.handler.handle(.ioOut(port: 0x3fa, size: 2, data: [1, 2, 3, 4, 5, 6])) == .resume(input: nil))
        #expect(rig.serial.writes == ["0x1=[2]", "0x0=[111]", "0x0=[107]", "0x2=[1, 2]", "0x2=[3, 4]", "0x2=[5, 6]"])
        #expect(rig.handler.handle(.ioOut(port: 0x80, size: 1, data: [0x55])) == .resume(input: nil))
    }

    @Test func mmioGoesToTheMMIOBusAtTheRightOffset() throws {
        let rig = try Rig()
        #expect(rig.handler.handle(.mmioRead(address: 0xd000_0070, size: 4)) == .resume(input: [0x40, 0x41, 0x42, 0x43]))
        #expect(rig.handler.handle(.mmioWrite(address: 0xd000_0050, data: [1, 0, 0, 0])) == .resume(input: nil))
        #expect(rig.virtio.reads == ["0x70/4"])
        #expect(rig.virtio.writes == ["0x50=[1, 0, 0, 0]"])
        #expect(rig.handler.handle(.mmioRead(address: 0xd000_1000, size: 2)) == .resume(input: [0xff, 0xff]))
    }

    @Test func eachKindOfExitUsesItsOwnBus() throws {
        let rig = try Rig()
        _ = rig.handler.handle(.ioIn(port: 0x1004, size: 1, count: 1))
        _ = rig.handler.handle(.ioOut(port: 0x1005, size: 1, data: [7]))
        _ = rig.handler.handle(.mmioRead(address: 0x1008, size: 1))
        _ = rig.handler.handle(.mmioWrite(address: 0x1009, data: [8]))
        #expect(rig.ports1000.reads == ["0x4/1"])
        #expect(rig.ports1000.writes == ["0x5=[7]"])
        #expect(rig.mmio1000.reads == ["0x8/1"])
        #expect(rig.mmio1000.writes == ["0x9=[8]"])
    }

    @Test func interruptedRunsResumeWithoutInput() throws {
        let rig = try Rig()
        #expect(rig.handler.handle(.interrupted) == .resume(input: nil))
        #expect(rig.serial.reads.isEmpty && rig.virtio.reads.isEmpty)
    }

    @Test(arguments: zip(
        [VCPUExit.halt, .shutdown, .internalError(suberror: 3), .failEntry(reason: 0x8000_0021),
         .systemEvent(type: 2), .unhandled(reason: 99)],
        [StopReason.halted, .tripleFault, .internalError(suberror: 3), .failEntry(reason: 0x8000_0021),
         .systemEvent(type: 2), .unhandledExit(reason: 99)]))
    func fatalExitsStopWithTheirReason(exit: VCPUExit, reason: StopReason) throws {
        #expect(try Rig().handler.handle(exit) == .stop(reason))
    }
}
