import Devices
import GuestMemory
import Testing

/// Regression tests modelled on CVE-2019-18960: Firecracker's vsock took a packet length from
/// the guest and used it to access memory past the end of guest RAM. Here every buffer is
/// checked against RAM (address + length, overflow included) when its chain is popped, so such
/// a chain is rejected before any device can read or write a byte of it.
@Suite struct CVE201918960Tests {
    /// A vsock TX packet: a 44-byte header buffer, then a payload whose length runs off the end
    /// of guest RAM (1 MiB here).
    @Test func payloadRunningPastTheEndOfRAMIsRejected() throws {
        let memory = try testMemory()
        let driver = FakeDriver(memory: memory, size: 8)
        let queue = try driver.makeQueue()
        driver.addChain([.readable(0x8000, 44), .readable(0xf_f000, 0x2000)])
        #expect(throws: VirtqueueError.bufferOutsideMemory(head: 0, address: 0xf_f000, length: 0x2000)) {
            try queue.pop()
        }
        #expect(driver.usedIndex == 0)
    }

    /// Address + length wrapping past 2^64 to land back inside RAM.
    @Test func payloadWhoseEndWrapsTheAddressSpaceIsRejected() throws {
        let memory = try testMemory()
        let driver = FakeDriver(memory: memory, size: 8)
        let queue = try driver.makeQueue()
        let address: UInt64 = 0xffff_ffff_ffff_f000
        driver.addChain([.readable(0x8000, 44), .writable(address, 0x2000)])
        #expect(throws: VirtqueueError.bufferOutsideMemory(head: 0, address: address, length: 0x2000)) {
            try queue.pop()
        }
    }

    /// The same packet through the transport: the device is stopped with DEVICE_NEEDS_RESET
    /// and never sees the chain.
    @Test func throughTheTransportTheDeviceNeverSeesTheChain() throws {
        let guest = try MMIOGuest()
        guest.probe()
        guest.queues[0].addChain([.readable(0x8000, 44), .readable(0xf_ffff, 0xffff_ffff)])
        guest.write(Reg.queueNotify, 0)
        #expect(guest.device.chains.isEmpty)
        #expect(guest.queues[0].usedIndex == 0)
        #expect(guest.read(Reg.status) & Status.needsReset != 0)
        #expect(guest.read(Reg.interruptStatus) == 0x2)
    }
}
