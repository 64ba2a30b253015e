import Glibc

/// A device's edge-triggered interrupt line into the guest. The VMM backs it with an irqfd;
/// tests back it with a counter.
public protocol InterruptLine: Sendable {
    func trigger()
}

/// A device that answers guest accesses in a window of an address space (port I/O or MMIO).
/// `offset` is relative to the window's base; `data.count` is the access width (1, 2, 4 or 8).
public protocol BusDevice: AnyObject, Sendable {
    func read(offset: UInt64, into data: inout [UInt8])
    func write(offset: UInt64, data: [UInt8])
}

/// Why a device could not be placed on a bus.
public enum BusError: Error, Equatable, Sendable, CustomStringConvertible {
    case overlap(base: UInt64, length: UInt64)
    case emptyRange(base: UInt64)

    public var description: String {
        switch self {
        case .overlap(let b, let l): "bus range 0x\(String(b, radix: 16))+0x\(String(l, radix: 16)) overlaps another device"
        case .emptyRange(let b): "bus range at 0x\(String(b, radix: 16)) is empty"
        }
    }
}

/// An address space (the I/O ports, or guest-physical MMIO) mapping ranges to devices.
/// Built before the vCPUs start and read-only afterwards, so lookups need no lock.
public struct Bus: Sendable {
    public struct Entry: Sendable {
        public let base: UInt64
        public let length: UInt64
        public let device: any BusDevice
    }
    public private(set) var entries: [Entry] = []

    public init() {}

    public mutating func insert(_ device: any BusDevice, base: UInt64, length: UInt64) throws(BusError) {
        guard length > 0 else { throw .emptyRange(base: base) }
        guard base <= UInt64.max - length else { throw .overlap(base: base, length: length) }
        for e in entries where base < e.base + e.length && e.base < base + length {
            throw .overlap(base: base, length: length)
        }
        entries.append(Entry(base: base, length: length, device: device))
        entries.sort { $0.base < $1.base }
    }

    /// The device covering `address` and the offset into it, if any (binary search).
    public func resolve(_ address: UInt64) -> (device: any BusDevice, offset: UInt64)? {
        var low = 0, high = entries.count
        while low < high {
            let mid = (low + high) / 2
            let e = entries[mid]
            if address < e.base { high = mid } else if address >= e.base + e.length { low = mid + 1 } else {
                return (e.device, address - e.base)
            }
        }
        return nil
    }

    /// Dispatches a read; unclaimed addresses read as all ones, like an open bus.
    public func read(_ address: UInt64, size: Int) -> [UInt8] {
        var data = [UInt8](repeating: 0xff, count: size)
        if let (device, offset) = resolve(address) {
            data = [UInt8](repeating: 0, count: size)
            device.read(offset: offset, into: &data)
        }
        return data
    }

    /// Dispatches a write; returns false when nothing claims the address (the write is dropped).
    @discardableResult
    public func write(_ address: UInt64, data: [UInt8]) -> Bool {
        guard let (device, offset) = resolve(address) else { return false }
        device.write(offset: offset, data: data)
        return true
    }
}
