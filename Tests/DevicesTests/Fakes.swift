import Devices
import POSIX

/// An interrupt line that counts its edges.
final class CountingLine: InterruptLine, @unchecked Sendable {
    private let lock = Lock()
    private var edges = 0
    var count: Int { lock.withLock { edges } }
    func trigger() { lock.withLock { edges += 1 } }
}

/// Remembers every value a device reports through its callback, in order.
final class Recorder<Value: Sendable>: @unchecked Sendable {
    private let lock = Lock()
    private var recorded: [Value] = []
    var values: [Value] { lock.withLock { recorded } }
    func record(_ value: Value) { lock.withLock { recorded.append(value) } }
}

/// A serial sink that keeps each `write` call as it came.
final class CollectedOutput: SerialOutput, @unchecked Sendable {
    let writes = Recorder<[UInt8]>()
    var bytes: [UInt8] { writes.values.flatMap { $0 } }
    func write(_ bytes: [UInt8]) { writes.record(bytes) }
}

/// A device that records accesses and reads as a fixed byte.
final class ProbeDevice: BusDevice, @unchecked Sendable {
    let fill: UInt8?
    let reads = Recorder<(offset: UInt64, size: Int)>()
    let writes = Recorder<(offset: UInt64, data: [UInt8])>()
    init(fill: UInt8? = nil) { self.fill = fill }

    func read(offset: UInt64, into data: inout [UInt8]) {
        reads.record((offset, data.count))
        if let fill { for i in data.indices { data[i] = fill } }
    }
    func write(offset: UInt64, data: [UInt8]) { writes.record((offset, data)) }
}

/// One byte read or written at `offset`, as a guest's INB/OUTB would.
func readByte(_ device: any BusDevice, _ offset: UInt64) -> UInt8 {
    var data: [UInt8] = [0xaa]
    device.read(offset: offset, into: &data)
    return data[0]
}

func writeByte(_ device: any BusDevice, _ offset: UInt64, _ value: UInt8) {
    device.write(offset: offset, data: [value])
}
