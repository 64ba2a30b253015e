/// The part of a transport's state its device may touch from another thread: status,
/// interrupt status, config generation and the live queues. Guarded by its own lock, which is
/// never held while calling into the device.
import POSIX

final class TransportSignals: @unchecked Sendable {
    static let usedBufferInterrupt: UInt32 = 0x1
    static let configChangeInterrupt: UInt32 = 0x2

    let lock = Lock()
    private let interrupt: any InterruptLine
    /// Told once per failure, outside the lock: the VMM logs it (and decides what to do).
    private let onFailure: (@Sendable (String) -> Void)?
    var status: UInt32 = 0
    var interruptStatus: UInt32 = 0
    var configGeneration: UInt32 = 0
    /// Bumped by every reset; notifiers from older activations are ignored.
    var epoch: UInt64 = 0
    /// Set once `activate` succeeded, until reset or failure.
    var deviceActive = false
    /// Queues the driver made ready, by index.
    var queues: [SplitQueue?]
    var failure: String?

    init(queueCount: Int, interrupt: any InterruptLine, onFailure: (@Sendable (String) -> Void)? = nil) {
        self.interrupt = interrupt
        self.onFailure = onFailure
        queues = Array(repeating: nil, count: queueCount)
    }

    /// Sets interrupt bits; the line is edge-triggered, so it is raised only when a bit is new.
    func raise(_ bits: UInt32, epoch: UInt64) {
        let gained: Bool = lock.withLock {
            guard epoch == self.epoch, status & VirtioStatus.deviceNeedsReset == 0 else { return false }
            return raiseLocked(bits)
        }
        if gained { interrupt.trigger() }
    }

    func configurationChanged(epoch: UInt64) {
        let gained: Bool = lock.withLock {
            guard epoch == self.epoch else { return false }
            configGeneration &+= 1
            return raiseLocked(Self.configChangeInterrupt)
        }
        if gained { interrupt.trigger() }
    }

    /// DEVICE_NEEDS_RESET (§2.1.2): stop the queues and send a configuration change notification.
    func fail(_ reason: String, epoch: UInt64) {
        let (failed, gained): (Bool, Bool) = lock.withLock {
            guard epoch == self.epoch, status & VirtioStatus.deviceNeedsReset == 0 else { return (false, false) }
            status |= VirtioStatus.deviceNeedsReset
            failure = reason
            deviceActive = false
            for q in queues { q?.stop() }
            return (true, raiseLocked(Self.configChangeInterrupt))
        }
        if gained { interrupt.trigger() }
        if failed { onFailure?(reason) }
    }

    func isActive(epoch: UInt64) -> Bool {
        lock.withLock { epoch == self.epoch && deviceActive }
    }

    private func raiseLocked(_ bits: UInt32) -> Bool {
        let gained = bits & ~interruptStatus
        interruptStatus |= bits
        return gained != 0
    }
}
