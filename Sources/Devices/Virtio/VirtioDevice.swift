import GuestMemory

/// A virtio device behind a transport. The transport owns feature negotiation, the status state
/// machine, queue setup and interrupts; the device supplies its identity, its configuration space
/// and what it does with buffers.
///
/// Threads: the config and lifecycle calls (`readConfig`, `writeConfig`, `activate`, `reset`)
/// come from vCPU threads, one at a time. `queueNotified` comes from whichever thread learns of
/// a driver notification: the device's event loop when an ioeventfd is registered, or a vCPU
/// writing QueueNotify when not. Hand the work to one thread, or make the device thread-safe.
public protocol VirtioDevice: AnyObject, Sendable {
    /// The DeviceID register (§5); see `VirtioDeviceType`.
    var deviceType: UInt32 { get }
    /// Device-specific feature bits (and the ring features it wants, e.g. `VirtioFeature.eventIndex`).
    /// The transport adds VIRTIO_F_VERSION_1.
    var offeredFeatures: UInt64 { get }
    /// One entry per queue: its maximum size, a power of two from 1 to 32768.
    var queueMaxSizes: [UInt16] { get }

    /// Fills `data` (1, 2 or 4 bytes, pre-zeroed) from configuration space at `offset`.
    /// Offsets past the device's configuration are left as zero.
    func readConfig(offset: Int, into data: inout [UInt8])
    /// A driver write to configuration space; ignore what is not writable.
    func writeConfig(offset: Int, data: [UInt8])
    /// The driver set DRIVER_OK. Keep the queues and notifier; process whatever the queues
    /// already hold (drivers may fill them before DRIVER_OK, when notifications are dropped).
    /// Throwing sets DEVICE_NEEDS_RESET.
    func activate(_ activation: VirtioActivation) throws
    /// The driver notified queue `index`. Sent only while the device is active — which begins as
    /// `activate` is called, so one may arrive before `activate` returns. Throwing, like
    /// `VirtioNotifier.fail`, sets DEVICE_NEEDS_RESET and stops the device.
    func queueNotified(_ index: Int) throws
    /// The driver reset the device after an `activate`. The queues are already stopped (they
    /// throw `.stopped` and no longer touch guest memory); drop them and any pending work.
    func reset()
}

/// What a device gets when the driver sets DRIVER_OK.
public struct VirtioActivation: Sendable {
    /// One entry per queue, in `queueMaxSizes` order; nil where the driver left the queue unused.
    public let queues: [SplitQueue?]
    public let memory: GuestMemory
    /// The features the driver accepted.
    public let features: UInt64
    public let notifier: VirtioNotifier
}

/// A device's way back to the driver, valid for one activation: once the driver resets the
/// device, calls through an old notifier do nothing.
public final class VirtioNotifier: Sendable {
    let signals: TransportSignals
    let epoch: UInt64

    init(signals: TransportSignals, epoch: UInt64) {
        self.signals = signals
        self.epoch = epoch
    }

    /// Sends a used buffer notification (InterruptStatus bit 0); call it when `SplitQueue.push`
    /// says the driver must be notified.
    public func usedBuffers() { signals.raise(TransportSignals.usedBufferInterrupt, epoch: epoch) }

    /// The device changed its configuration space: bumps ConfigGeneration and sends a
    /// configuration change notification (InterruptStatus bit 1).
    public func configurationChanged() { signals.configurationChanged(epoch: epoch) }

    /// The device hit an error it cannot continue from (usually a `VirtqueueError`): sets
    /// DEVICE_NEEDS_RESET, stops every queue and notifies the driver (§2.1.2). Only the driver's
    /// reset clears it.
    public func fail(_ error: any Error) { signals.fail(String(describing: error), epoch: epoch) }

    /// Whether this activation is still current and the device has not failed.
    public var isActive: Bool { signals.isActive(epoch: epoch) }
}
