import Doors
import Glibc
import POSIX

/// The host end of one Doors connection to a guest's momin-init, reached through the VMM's
/// vsock Unix socket (Firecracker's convention: connect, send `CONNECT <port>\n`, read
/// `OK <host port>\n`, then the stream is the guest's). Blocking, one request at a time.
public final class DoorsClient {
    private let fd: Int32
    private var decoder = FrameDecoder()
    private var encoder = FrameEncoder()
    private var nextRequest: UInt32 = 1
    public private(set) var session: Session
    /// The longest the guest may stay silent while the host waits on it outside an exec.
    public let silenceSeconds: Double
    /// The socket's SO_RCVTIMEO, for messages.
    private var receiveLimit: Double = 0

    /// How long a guest may leave the host waiting, by default, for an answer to a file call,
    /// stat, list, resolve or ping (between two of its frames), or for room to send it one. Past
    /// it the connection is shut down and the call fails `.timedOut`: no host thread waits on a
    /// guest for ever (ARCHITECTURE.md: nothing a guest sends may stall the host). An exec
    /// waits as long as its program runs, and has `ExecDeadline` for the rest.
    public static let defaultSilenceSeconds: Double = 60

    /// Connects to guest vsock `port` through `socketPath`, retrying until the guest listens or
    /// `seconds` pass (or `giveUp` says the VM is gone), then exchanges Hello frames.
    public init(socketPath: String, port: UInt32, seconds: Double, silenceSeconds: Double = DoorsClient.defaultSilenceSeconds,
                giveUp: () -> Bool = { false }) throws(GuestCallError) {
        precondition(silenceSeconds > 0, "a Doors connection needs a positive silence limit")
        self.silenceSeconds = silenceSeconds
        let deadline = MonotonicClock.seconds() + seconds
        var connected: Int32 = -1
        while connected < 0 {
            let left = max(deadline - MonotonicClock.seconds(), 1)
            connected = try VsockHostSocket.connect(socketPath: socketPath, port: port, answerSeconds: left) ?? -1
            if connected >= 0 { break }
            if giveUp() { throw .vmEndedBeforeListening(port: port) }
            guard MonotonicClock.seconds() < deadline else { throw .guestNotListening(port: port, seconds: seconds) }
            usleep(50_000)
        }
        fd = connected
        session = Session(version: DoorsProtocol.currentVersion, maxPayload: DoorsProtocol.maxPayload)
        do {
            // The guest's Hello must come within what is left of `seconds`; after that, each
            // blocking read or send waits at most `silenceSeconds` (exec polls on its own).
            receiveLimit = max(deadline - MonotonicClock.seconds(), 1)
            VsockHostSocket.setReceiveTimeout(fd, seconds: receiveLimit)
            VsockHostSocket.setSendTimeout(fd, seconds: silenceSeconds)
            let local = Hello(software: "momin")
            try send(Frame(requestID: 0, .hello(local)))
            let frame = try receive(waitingFor: "the guest's Doors Hello on vsock port \(port)")
            receiveLimit = silenceSeconds
            VsockHostSocket.setReceiveTimeout(fd, seconds: receiveLimit)
            guard case .hello(let remote) = frame.message else {
                if case .error(let reply) = frame.message { throw GuestCallError.remote(reply) }
                throw GuestCallError.unexpected(frame.message)
            }
            do { session = try Session.negotiate(local: local, remote: remote) } catch { throw GuestCallError.protocolError(error) }
            encoder = FrameEncoder(session: session)
            decoder.apply(session)
        } catch let error as GuestCallError {
            // Every stored property is set by now, so deinit runs and closes the socket: closing
            // it here too could close another thread's descriptor that reused the number.
            throw error
        } catch {
            throw .connectionClosed
        }
    }

    deinit { close(fd) }

    /// Runs a program in the guest, passing its output to `output` as it arrives (`true` for
    /// stdout, `false` for stderr), and returns how it ended. `stdin`, when given, is sent as the
    /// program's standard input, then its end.
    public func exec(_ request: ExecRequest, stdin: [UInt8]? = nil,
                     output: (Bool, [UInt8]) -> Void) throws(GuestCallError) -> ExitReport {
        try exec(request, input: stdin.map { .bytes($0) } ?? .none, output: output)
    }

    /// When the host stops waiting for an exec, whatever the guest does: the guest enforces an
    /// exec's timeout itself, but a guest is not trusted to. At `cancel` (monotonic nanoseconds)
    /// the exec is cancelled as if `shouldKill` had said so; if its Exit has not come by
    /// `abandon`, the connection is shut down and the call fails `.timedOut`.
    public struct ExecDeadline: Sendable, Equatable {
        public var cancel: UInt64
        public var abandon: UInt64

        public init(cancel: UInt64, abandon: UInt64) {
            self.cancel = cancel
            self.abandon = max(cancel, abandon)
        }
    }

    /// What an exec reads as its standard input.
    public enum ExecInput: Sendable {
        /// /dev/null in the guest.
        case none
        case bytes([UInt8])
        /// Read from this host descriptor (our stdin, a pipe, a file) until EOF, as it comes.
        case descriptor(Int32)
    }

    /// Runs a program in the guest. Standard input goes out while output comes back, in one
    /// poll(2) loop: a program that writes more than the buffers hold before it reads its
    /// input (or the other way round) must not wedge both sides. Input still unsent when the
    /// program exits is dropped. Once `shouldKill` says so (it is asked after each chunk of
    /// output, and with `killPollMilliseconds` also at least that often while the program is
    /// silent), or `deadline.cancel` passes, the exec is cancelled (the guest kills its process
    /// group) and what it sends until its Exit is still read; an exec the host cancelled at its
    /// deadline is reported `timedOut`.
    public func exec(_ request: ExecRequest, input: ExecInput, deadline: ExecDeadline? = nil, shouldKill: () -> Bool = { false },
                     killPollMilliseconds: Int32? = nil,
                     output: (Bool, [UInt8]) -> Void) throws(GuestCallError) -> ExitReport {
        var request = request
        if case .none = input { request.sendsStdin = false } else { request.sendsStdin = true }
        let id = allocateRequest()
        var outgoing = OutgoingFrames()
        try encode(Frame(requestID: id, .exec(request)), into: &outgoing)
        var bytesOffset = 0
        var inputOpen = request.sendsStdin
        var chunk = [UInt8](repeating: 0, count: session.maxPayload)
        // Queue input only while little is waiting to go, so a slow guest bounds our memory.
        let lowWater = 4 * session.maxPayload
        var killSent = false
        var cancelledAtDeadline = false
        // No more input; the Cancel follows what is queued (at most a few frames: a frame half
        // sent cannot be taken back).
        func cancel() throws(GuestCallError) {
            killSent = true
            inputOpen = false
            try encode(Frame(requestID: id, .cancel), into: &outgoing)
        }
        while true {
            while let frame = try nextBufferedFrame() {
                if frame.requestID == 0, case .error(let reply) = frame.message { throw .remote(reply) }
                guard frame.requestID == id else { continue }
                switch frame.message {
                case .started: break
                case .stdoutData(let bytes): output(true, bytes)
                case .stderrData(let bytes): output(false, bytes)
                case .exit(var report):
                    if cancelledAtDeadline { report.timedOut = true }
                    return report
                case .error(let reply): throw .remote(reply)
                default: throw .unexpected(frame.message)
                }
                if !killSent, shouldKill() { try cancel() }
            }
            if inputOpen, outgoing.count < lowWater, case .bytes(let bytes) = input {
                let end = min(bytesOffset + session.maxPayload, bytes.count)
                if end > bytesOffset {
                    try encode(Frame(requestID: id, .stdinData(Array(bytes[bytesOffset..<end]))), into: &outgoing)
                    bytesOffset = end
                }
                if bytesOffset == bytes.count {
                    try encode(Frame(requestID: id, .stdinEnd), into: &outgoing)
                    inputOpen = false
                }
                continue
            }
            var wait: Int32 = -1
            if let deadline {
                if !killSent, MonotonicClock.nanoseconds() >= deadline.cancel {
                    cancelledAtDeadline = true
                    try cancel()
                }
                if killSent, MonotonicClock.nanoseconds() >= deadline.abandon {
                    // The guest neither ended the program nor said so: this connection can no
                    // longer be trusted to be in step, so no later call uses it.
                    shutdown(fd, Int32(SHUT_RDWR))
                    throw .timedOut("the exec's Exit, which the guest did not send in time after its deadline")
                }
                wait = MonotonicClock.pollTimeout(until: killSent ? deadline.abandon : deadline.cancel)
            }
            if let every = killPollMilliseconds, !killSent {
                if shouldKill() {
                    try cancel()
                    continue
                }
                wait = wait < 0 ? every : min(wait, every)
            }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN) | (outgoing.isEmpty ? 0 : Int16(POLLOUT)), revents: 0)]
            if inputOpen, outgoing.count < lowWater, case .descriptor(let source) = input {
                fds.append(pollfd(fd: source, events: Int16(POLLIN), revents: 0))
            }
            let ready = poll(&fds, nfds_t(fds.count), wait)
            if ready < 0 && errno == EINTR { continue }
            if ready < 0 { throw .socket("poll", errno: errno) }
            if fds[0].revents & Int16(POLLOUT) != 0 {
                let n = outgoing.withPending { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                if n > 0 {
                    outgoing.consume(n)
                } else if n < 0 && errno != EAGAIN && errno != EINTR {
                    guard errno == EPIPE || errno == ECONNRESET else { throw .socket("send", errno: errno) }
                    // The guest stopped reading (its program exited and it closed the stream):
                    // send no more, but read what it sent before, its Exit frame among it.
                    outgoing = OutgoingFrames()
                    inputOpen = false
                }
            }
            if fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                var buffer = [UInt8](repeating: 0, count: min(65536, decoder.freeCapacity))
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n == 0 { throw .connectionClosed }
                if n > 0 {
                    decoder.append(buffer[0..<n])
                } else if errno != EAGAIN && errno != EINTR {
                    if errno == ECONNRESET { throw .connectionClosed }
                    throw .socket("recv", errno: errno)
                }
            }
            if fds.count > 1, fds[1].revents != 0, case .descriptor(let source) = input {
                let n = chunk.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
                if n > 0 {
                    try encode(Frame(requestID: id, .stdinData(Array(chunk[0..<n]))), into: &outgoing)
                } else if n == 0 {
                    try encode(Frame(requestID: id, .stdinEnd), into: &outgoing)
                    inputOpen = false
                } else if errno != EAGAIN && errno != EINTR {
                    throw .socket("read of the input", errno: errno)
                }
            }
        }
    }

    /// Streams everything readable from `source` (a host file descriptor) into the guest file
    /// `path`; returns the bytes the guest wrote. `sent` sees each chunk as it goes.
    public func writeFile(_ request: WriteFileRequest, from source: Int32,
                          sent: ([UInt8]) -> Void = { _ in }) throws(GuestCallError) -> UInt64 {
        let id = allocateRequest()
        try send(Frame(requestID: id, .writeFile(request)))
        var buffer = [UInt8](repeating: 0, count: session.maxPayload)
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in retryingEINTR { read(source, raw.baseAddress, raw.count) } }
            if n < 0 { throw .socket("read", errno: errno) }
            if n == 0 { break }
            let chunk = Array(buffer[0..<n])
            sent(chunk)
            try send(Frame(requestID: id, .fileData(chunk)))
        }
        try send(Frame(requestID: id, .fileEnd))
        return try awaitReply(id, "the guest's answer to a write of \(request.path)") { message throws(GuestCallError) in
            guard case .ok(let count) = message else { throw .unexpected(message) }
            return count
        }
    }

    /// Streams the guest file `path` into `destination` (a host file descriptor); returns the
    /// bytes copied.
    public func readFile(_ request: ReadFileRequest, to destination: Int32) throws(GuestCallError) -> UInt64 {
        var failed: Int32?
        let total = try readFile(request) { bytes in
            guard failed == nil else { return }
            do throws(SystemError) { try FileIO.writeAll(destination, bytes) } catch { failed = error.errno }
        }
        if let failed { throw .socket("write", errno: failed) }
        return total
    }

    /// Streams the guest file `path` to `received`, chunk by chunk; returns the bytes read.
    public func readFile(_ request: ReadFileRequest, received: ([UInt8]) -> Void) throws(GuestCallError) -> UInt64 {
        let id = allocateRequest()
        try send(Frame(requestID: id, .readFile(request)))
        var total: UInt64 = 0
        return try awaitReply(id, "the guest's next part of \(request.path)") { message throws(GuestCallError) in
            switch message {
            case .fileData(let bytes):
                total += UInt64(bytes.count)
                // A guest that sends more than was asked for could keep a host thread reading
                // for ever: the call ends there, and the connection, out of step, with it.
                if let length = request.length, total > length {
                    shutdown(fd, Int32(SHUT_RDWR))
                    throw .exceeded("a read of \(request.path) past the \(length) bytes asked for")
                }
                received(bytes)
                return nil
            case .fileEnd: return total
            default: throw .unexpected(message)
            }
        }
    }

    /// Stat of a guest path (symlinks not followed).
    public func stat(_ path: String) throws(GuestCallError) -> FileStat {
        try stat(StatRequest(path: path))
    }

    public func stat(_ request: StatRequest) throws(GuestCallError) -> FileStat {
        let id = allocateRequest()
        try send(Frame(requestID: id, .stat(request)))
        return try awaitReply(id, "the guest's stat of \(request.path)") { message throws(GuestCallError) in
            guard case .statResult(let result) = message else { throw .unexpected(message) }
            return result
        }
    }

    /// The most entries one listing may bring; a guest that sends more ends the call.
    public static let maxListEntries = 100_000

    /// The entries of guest directory `path`, in the batches the guest sent them (each batch is
    /// bounded by the frame decoder; their number by `maxEntries`).
    public func list(_ path: String, maxEntries: Int = DoorsClient.maxListEntries) throws(GuestCallError) -> [[DirectoryEntry]] {
        let id = allocateRequest()
        try send(Frame(requestID: id, .list(path: path)))
        var batches: [[DirectoryEntry]] = []
        var count = 0
        return try awaitReply(id, "the guest's listing of \(path)") { message throws(GuestCallError) in
            switch message {
            case .listEntries(let batch):
                count += batch.count
                guard count <= maxEntries else { throw .exceeded("a listing of \(path) with more than \(maxEntries) entries") }
                batches.append(batch)
                return nil
            case .listEnd: return batches
            default: throw .unexpected(message)
            }
        }
    }

    /// The canonical path the guest's kernel reaches for `path` (realpath(3) in the guest).
    public func resolve(_ path: String) throws(GuestCallError) -> String {
        let id = allocateRequest()
        try send(Frame(requestID: id, .resolve(path: path)))
        return try awaitReply(id, "the guest's resolution of \(path)") { message throws(GuestCallError) in
            guard case .resolved(let resolved) = message else { throw .unexpected(message) }
            return resolved
        }
    }

    /// A Ping/Pong round trip.
    public func ping() throws(GuestCallError) {
        let id = allocateRequest()
        let nonce = UInt64(id) << 32 | 0x5a5a
        try send(Frame(requestID: id, .ping(nonce: nonce)))
        try awaitReply(id, "the guest's Pong") { message throws(GuestCallError) in
            guard case .pong(nonce) = message else { throw .unexpected(message) }
            return ()
        }
    }

    /// Reads frames until `handle` returns a value for request `id`; an Error frame for it is
    /// thrown, as is a connection-level Error (request 0); frames for other requests are skipped.
    /// `what` names the awaited answer in a timeout's message.
    private func awaitReply<T>(_ id: UInt32, _ what: String, _ handle: (DoorsMessage) throws(GuestCallError) -> T?) throws(GuestCallError) -> T {
        while true {
            let frame = try receive(waitingFor: what)
            // An Error on request 0 is about the whole connection: the guest closes right after.
            if frame.requestID == 0, case .error(let reply) = frame.message { throw .remote(reply) }
            guard frame.requestID == id else { continue }
            if case .error(let reply) = frame.message { throw .remote(reply) }
            if let value = try handle(frame.message) { return value }
        }
    }

    private func allocateRequest() -> UInt32 {
        defer { nextRequest = nextRequest >= 0x7fff_ffff ? 1 : nextRequest + 1 }
        return nextRequest
    }

    private func encode(_ frame: Frame, into outgoing: inout OutgoingFrames) throws(GuestCallError) {
        do { try encoder.encode(frame, into: &outgoing.bytes) } catch { throw .protocolError(error) }
    }

    private func nextBufferedFrame() throws(GuestCallError) -> Frame? {
        do { return try decoder.next() } catch { throw .protocolError(error) }
    }

    /// Sends one frame, waiting at most `silenceSeconds` (SO_SNDTIMEO) for the guest to make room.
    private func send(_ frame: Frame) throws(GuestCallError) {
        let bytes: [UInt8]
        do { bytes = try encoder.encode(frame) } catch { throw .protocolError(error) }
        do { try FileIO.sendAll(fd, bytes) } catch {
            guard error.errno == EAGAIN || error.errno == EWOULDBLOCK else { throw .connectionClosed }
            throw abandon("the guest to read a Doors frame: it took nothing for \(silenceSeconds) s")
        }
    }

    /// The next frame. A read that waits past SO_RCVTIMEO (`silenceSeconds`, or during the
    /// handshake what is left of its time) is a timeout waiting for `what`.
    private func receive(waitingFor what: String) throws(GuestCallError) -> Frame {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            do { if let frame = try decoder.next() { return frame } } catch { throw .protocolError(error) }
            let room = min(buffer.count, decoder.freeCapacity)
            let n = buffer.withUnsafeMutableBytes { raw in retryingEINTR { read(fd, raw.baseAddress, room) } }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { throw abandon("\(what) (the guest was silent for \(receiveLimit) s)") }
            if n < 0 { throw .socket("read", errno: errno) }
            if n == 0 { throw .connectionClosed }
            decoder.append(buffer[0..<n])
        }
    }

    /// A call given up on: its answer may still come, so the connection is out of step and is
    /// shut down; every later call on it fails as closed.
    private func abandon(_ what: String) -> GuestCallError {
        shutdown(fd, Int32(SHUT_RDWR))
        return .timedOut(what)
    }
}

/// Encoded frames waiting for room in the socket, sent from the front.
struct OutgoingFrames {
    var bytes: [UInt8] = []
    private var head = 0

    var count: Int { bytes.count - head }
    var isEmpty: Bool { count == 0 }

    func withPending<T>(_ body: (UnsafeRawBufferPointer) -> T) -> T {
        bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[head...])) }
    }

    mutating func consume(_ n: Int) {
        head += n
        if head == bytes.count {
            bytes.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1 << 20 {
            bytes.removeFirst(head)
            head = 0
        }
    }
}
