/// The boot-timer pseudo-device: the guest init writes the magic byte to I/O port 0x440 once it
/// is up, and the VMM reports the time since its own start (after Firecracker's boot timer, which
/// uses an MMIO write of 123). MominAI's guest init writes through /dev/port, so no driver is
/// needed in the guest.
import POSIX

public final class BootTimer: BusDevice, @unchecked Sendable {
    public static let port: UInt64 = 0x440
    public static let magic: UInt8 = 123

    private let lock = Lock()
    private var fired = false
    private let onBootComplete: @Sendable () -> Void

    public init(onBootComplete: @escaping @Sendable () -> Void) { self.onBootComplete = onBootComplete }

    public func read(offset: UInt64, into data: inout [UInt8]) {
        for i in data.indices { data[i] = 0 }
    }

    /// Only the first magic write counts: a guest can't spam the host's log.
    public func write(offset: UInt64, data: [UInt8]) {
        guard offset == 0, data.first == Self.magic else { return }
        let first = lock.withLock { () -> Bool in
            defer { fired = true }
            return !fired
        }
        if first { onBootComplete() }
    }
}
