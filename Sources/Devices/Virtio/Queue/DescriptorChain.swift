import GuestMemory

/// One buffer of a descriptor chain: `length` bytes at guest-physical `address`, already checked
/// to lie inside guest RAM when the chain was popped.
public struct VirtqueueBuffer: Equatable, Sendable {
    public let address: UInt64
    public let length: UInt32

    public init(address: UInt64, length: UInt32) {
        self.address = address
        self.length = length
    }
}

/// A descriptor chain taken from the available ring (§2.7.13): its head index (what goes back in
/// the used ring) and its buffers, device-readable ones first, then device-writable ones (§2.7.4).
public struct DescriptorChain: Sendable {
    public let head: UInt16
    public let readable: [VirtqueueBuffer]
    public let writable: [VirtqueueBuffer]
    /// Total bytes of the readable and writable buffers; together below 4 GiB.
    public let readableLength: Int
    public let writableLength: Int
    let memory: GuestMemory

    init(head: UInt16, readable: [VirtqueueBuffer], writable: [VirtqueueBuffer], memory: GuestMemory) {
        self.head = head
        self.readable = readable
        self.writable = writable
        readableLength = readable.reduce(0) { $0 + Int($1.length) }
        writableLength = writable.reduce(0) { $0 + Int($1.length) }
        self.memory = memory
    }

    /// This chain, if it has no device-writable buffer (a request the device only reads).
    public func requireReadableOnly() throws(VirtqueueError) -> DescriptorChain {
        guard writable.isEmpty else { throw .unexpectedWritableBuffer(head: head) }
        return self
    }

    /// This chain, if it has no device-readable buffer (a buffer the device only fills).
    public func requireWritableOnly() throws(VirtqueueError) -> DescriptorChain {
        guard readable.isEmpty else { throw .unexpectedReadableBuffer(head: head) }
        return self
    }

    /// Copies out at most `maxBytes` of the readable buffers, starting `offset` bytes in. The
    /// cap is the caller's: a guest can offer up to 4 GiB in one chain.
    public func readReadable(from offset: Int = 0, maxBytes: Int) throws(VirtqueueError) -> [UInt8] {
        var skip = max(offset, 0)
        var wanted = min(max(maxBytes, 0), max(readableLength - skip, 0))
        var out: [UInt8] = []
        out.reserveCapacity(wanted)
        for b in readable where wanted > 0 {
            let length = Int(b.length)
            if skip >= length { skip -= length; continue }
            let count = min(length - skip, wanted)
            let address = b.address + UInt64(skip)
            do { out += try memory.read(at: address, count: count) } catch {
                throw .bufferOutsideMemory(head: head, address: b.address, length: b.length)
            }
            skip = 0
            wanted -= count
        }
        return out
    }

    /// Writes `bytes` into the writable buffers starting `offset` bytes in, as far as they
    /// reach; returns how many bytes fitted.
    public func writeWritable(_ bytes: [UInt8], at offset: Int = 0) throws(VirtqueueError) -> Int {
        var skip = max(offset, 0)
        var written = 0
        for b in writable where written < bytes.count {
            let length = Int(b.length)
            if skip >= length { skip -= length; continue }
            let count = min(length - skip, bytes.count - written)
            let address = b.address + UInt64(skip)
            do { try memory.write(bytes, from: written, count: count, at: address) } catch {
                throw .bufferOutsideMemory(head: head, address: b.address, length: b.length)
            }
            skip = 0
            written += count
        }
        return written
    }
}
