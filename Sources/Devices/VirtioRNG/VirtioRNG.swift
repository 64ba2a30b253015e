import Glibc
import POSIX

/// Where a device gets random bytes. The host's getrandom(2) by default; a seeded generator
/// when a session must be replayed.
public protocol EntropySource: Sendable {
    func fill(_ count: Int) -> [UInt8]
}

/// The host's CSPRNG: glibc's arc4random_buf(3), a ChaCha20 stream keyed from getrandom(2);
/// it cannot fail and needs no file descriptor (so it keeps working inside a jail).
public struct SystemEntropy: EntropySource {
    public init() {}
    public func fill(_ count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
        return bytes
    }
}

/// virtio-rng (virtio 1.2 §5.4, "Entropy Device"): one request queue; the driver posts
/// device-writable buffers and the device fills them. Each request is bounded so that a guest
/// cannot make the host produce (and copy) an unbounded amount per notification.
public final class VirtioRNG: VirtioDevice, @unchecked Sendable {
    /// Most bytes given for one descriptor chain (Firecracker caps requests at 64 KiB too).
    public static let maximumRequest = 64 * 1024
    public static let queueSize: UInt16 = 256

    public let deviceType = VirtioDeviceType.entropy
    public let offeredFeatures: UInt64 = VirtioFeature.eventIndex
    public let queueMaxSizes: [UInt16] = [queueSize]

    private let entropy: any EntropySource
    private let lock = Lock()
    private var activation: VirtioActivation?
    private var served = 0
    /// Bytes handed to the guest, for tests and statistics.
    public var bytesServed: Int { lock.withLock { served } }

    public init(entropy: any EntropySource = SystemEntropy()) { self.entropy = entropy }

    // §5.4.4: the entropy device has no configuration space.
    public func readConfig(offset: Int, into data: inout [UInt8]) {}
    public func writeConfig(offset: Int, data: [UInt8]) {}

    public func activate(_ activation: VirtioActivation) throws {
        lock.withLock { self.activation = activation }
        try queueNotified(0)
    }

    public func reset() { lock.withLock { activation = nil } }

    /// Fills every available request; a malformed chain stops the device (the transport sets
    /// DEVICE_NEEDS_RESET), never the VMM.
    public func queueNotified(_ index: Int) throws {
        try lock.withLock {
            guard index == 0, let activation, let queue = activation.queues.first ?? nil else { return }
            var notify = false
            while let chain = try queue.pop() {
                // §5.4.6.1: the driver's buffers are device-writable only.
                let request = try chain.requireWritableOnly()
                let count = min(request.writableLength, Self.maximumRequest)
                let written = try request.writeWritable(entropy.fill(count))
                served += written
                notify = try queue.push(head: request.head, length: UInt32(written)) || notify
            }
            if notify { activation.notifier.usedBuffers() }
        }
    }
}
