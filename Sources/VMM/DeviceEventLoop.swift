import Glibc
import KVM

/// The device thread: waits on the ioeventfds that KVM signals when the guest writes a queue's
/// notify register, and runs that queue's handler. One thread for every device keeps device
/// work off the vCPU threads and serial within a device.
final class DeviceEventLoop: @unchecked Sendable {
    struct Source {
        let event: EventFD
        let handler: @Sendable () -> Void
    }

    private let sources: [Source]
    private let stopEvent: EventFD
    private var thread: NativeThread?

    init(sources: [Source]) throws(VMMError) {
        self.sources = sources
        do { stopEvent = try EventFD(nonBlocking: true) } catch { throw .kvm(error) }
    }

    func start() throws(VMMError) {
        guard !sources.isEmpty else { return }
        thread = try NativeThread(name: "devices") { [self] in loop() }
    }

    /// Ends the loop and waits for the thread.
    func stop() {
        stopEvent.signal()
        thread?.join()
        thread = nil
    }

    private func loop() {
        var fds = sources.map { pollfd(fd: $0.event.pollDescriptor, events: Int16(POLLIN), revents: 0) }
        fds.append(pollfd(fd: stopEvent.pollDescriptor, events: Int16(POLLIN), revents: 0))
        while true {
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                return  // EFAULT/EINVAL would be bugs here; stop serving rather than spin.
            }
            if fds[sources.count].revents != 0 { return }
            for i in sources.indices where fds[i].revents != 0 {
                _ = sources[i].event.drain()
                sources[i].handler()
            }
        }
    }
}
