import Doors
import Glibc

/// A Doors connection the probe drives frame by frame, over its own `VsockStream`: unlike the
/// guest client it can send raw bytes, keep several requests in flight, and drop the stream
/// abruptly mid-request.
final class DoorsLink {
    let stream: VsockStream
    private(set) var session = Session(version: DoorsProtocol.currentVersion, maxPayload: DoorsProtocol.maxPayload)
    private var decoder = FrameDecoder()
    private var encoder = FrameEncoder()
    private var scratch = [UInt8](repeating: 0, count: 64 << 10)

    /// Connects; with `handshake`, exchanges Hellos (the guest sends its Hello first whatever
    /// we send, so without it the guest's Hello is the first frame `receive()` returns).
    init(_ target: Target, handshake: Bool = true) throws(ProbeError) {
        stream = try VsockStream(target, port: target.doorsPort)
        guard handshake else { return }
        let local = Hello(software: "momin-probe")
        try send(Frame(requestID: 0, .hello(local)))
        guard let first = try receive() else { throw .closed("before the guest's Hello") }
        guard case .hello(let remote) = first.message else { throw .unexpected("the first frame was \(first.type), not Hello") }
        do { session = try Session.negotiate(local: local, remote: remote) } catch { throw .doors(error) }
        encoder = FrameEncoder(session: session)
        decoder.apply(session)
    }

    func encode(_ frame: Frame, into bytes: inout [UInt8]) throws(ProbeError) {
        do { try encoder.encode(frame, into: &bytes) } catch { throw .doors(error) }
    }

    func send(_ frame: Frame) throws(ProbeError) {
        var bytes: [UInt8] = []
        try encode(frame, into: &bytes)
        try stream.send(bytes)
    }

    /// Bytes as they are, valid or not.
    func sendRaw(_ bytes: [UInt8]) throws(ProbeError) {
        try stream.send(bytes)
    }

    /// The next frame, or nil at a clean end of stream.
    func receive() throws(ProbeError) -> Frame? {
        while true {
            if let frame = try nextBuffered() { return frame }
            let room = min(scratch.count, decoder.freeCapacity)
            let n = try stream.receive(into: &scratch, count: room)
            if n == 0 {
                guard decoder.bufferedByteCount == 0 else { throw .closed("inside a frame") }
                return nil
            }
            decoder.append(scratch[0..<n])
        }
    }

    private func nextBuffered() throws(ProbeError) -> Frame? {
        do { return try decoder.next() } catch { throw .doors(error) }
    }

    /// Sends `outgoing` while reading and handing each arriving frame to `handle`, so that
    /// neither side can stall the other (a `cat` echoes stdin while it is still being sent).
    /// Returns as soon as `handle` says the exchange is over (a terminal frame: anything not
    /// sent yet is dropped), or, with `stopWhenSent`, as soon as everything is sent.
    func pump(_ outgoing: [UInt8], stopWhenSent: Bool = false, handle: (Frame) throws(ProbeError) -> Bool) throws(ProbeError) {
        var sent = 0
        var finished = false
        let timeout = Int32(min(stream.ioSeconds * 1000, Double(Int32.max)))
        while true {
            if stopWhenSent && sent == outgoing.count { return }
            // Frames the decoder already holds first: they need no poll.
            while !finished, let frame = try nextBuffered() { finished = try handle(frame) }
            if finished { return }
            var events = Int16(POLLIN)
            if sent < outgoing.count { events |= Int16(POLLOUT) }
            var entry = pollfd(fd: stream.fd, events: events, revents: 0)
            let ready = poll(&entry, 1, timeout)
            if ready < 0 && errno == EINTR { continue }
            if ready < 0 { throw .system("poll", errno: errno) }
            if ready == 0 { throw .timedOut(sent < outgoing.count ? "the guest to take more bytes" : "the guest's answer") }
            if entry.revents & Int16(POLLOUT) != 0 && sent < outgoing.count {
                let n = outgoing.withUnsafeBytes {
                    Glibc.send(stream.fd, $0.baseAddress! + sent, outgoing.count - sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                }
                if n > 0 { sent += n } else if n < 0 && errno != EAGAIN && errno != EINTR { throw .system("send", errno: errno) }
            }
            if entry.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let room = min(scratch.count, decoder.freeCapacity)
                let n = scratch.withUnsafeMutableBytes { recv(stream.fd, $0.baseAddress, room, Int32(MSG_DONTWAIT)) }
                if n == 0 { throw .closed(sent < outgoing.count ? "while we were still sending" : "before the request ended") }
                if n < 0 && errno != EAGAIN && errno != EINTR { throw .system("recv", errno: errno) }
                if n > 0 { decoder.append(scratch[0..<n]) }
            }
        }
    }
}

/// Where the probe reaches the guest.
struct Target: Sendable {
    var socketPath: String
    var doorsPort: UInt32 = 1024
    /// How long any single wait for the guest may last.
    var ioSeconds: Double = 120
}

extension VsockStream {
    convenience init(_ target: Target, port: UInt32) throws(ProbeError) {
        try self.init(socketPath: target.socketPath, port: port, connectSeconds: target.ioSeconds, ioSeconds: target.ioSeconds)
    }
}
