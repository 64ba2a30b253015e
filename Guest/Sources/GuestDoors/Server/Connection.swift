import Doors
import Glibc
import POSIX

/// One Doors connection, served by one thread: a poll(2) loop over the stream socket, the
/// pipes of this connection's children, and the wake pipe of its exit mailbox.
///
/// Backpressure: nothing is read that would have to be queued without bound. Output (child
/// pipes, file reads, listings) is produced only while fewer than `outboundLimit` bytes wait
/// for the socket; when the host does not read, children block on their full pipes. The
/// socket itself is read only while the outbound queue and the stdin bytes queued for
/// children are under their limits.
final class Connection {
    private let socket: Descriptor
    private let configuration: DoorsServerConfiguration
    private let reaper: ChildReaper
    private let mailbox: ExitMailbox
    private let localHello: Hello

    private var decoder = FrameDecoder()
    private var encoder = FrameEncoder()
    private var session: Session?

    /// Encoded frames not yet taken by the socket, from `outboundHead` on.
    private var outbound: [UInt8] = []
    private var outboundHead = 0
    /// Scratch for socket and pipe reads.
    private var scratch: [UInt8]
    /// Scratch for file reads, allocated while a ReadFile is streaming.
    private var fileScratch: [UInt8] = []

    private var jobs: [UInt32: Job] = [:]
    private var requestByPID: [Int32: UInt32] = [:]
    /// Stdin bytes queued for all children of this connection.
    private var queuedStdin = 0

    private enum State: Equatable {
        case open
        /// A connection error was sent; flush it until the deadline, then close.
        case closing(deadline: UInt64)
        case closed
    }
    private var state = State.open

    static let scratchSize = 64 << 10

    init(socket: Descriptor, configuration: DoorsServerConfiguration, reaper: ChildReaper) throws(SystemError) {
        self.socket = socket
        self.configuration = configuration
        self.reaper = reaper
        mailbox = try ExitMailbox()
        localHello = Hello(
            versions: DoorsProtocol.supportedVersions,
            maxPayload: UInt32(DoorsProtocol.maxPayload),
            software: truncated(configuration.software, toBytes: DoorsLimits.maxSoftwareLength))
        scratch = uninitializedBytes(Self.scratchSize)
        try socket.setNonBlocking()
    }

    /// Serves until the peer goes away or a connection error; then kills this connection's
    /// children, closes its files and the socket.
    func run() {
        send(Frame(requestID: 0, .hello(localHello)))
        flush()
        while state != .closed {
            step()
        }
        abortAll()
        socket.close()
    }

    // MARK: - The loop

    private enum Role {
        case socket, wake, stdin(UInt32), stdout(UInt32), stderr(UInt32)
    }

    private var outboundPending: Int { outbound.count - outboundHead }
    private var hasOutboundRoom: Bool { outboundPending < configuration.outboundLimit }
    private var readsSocket: Bool {
        state == .open && hasOutboundRoom && queuedStdin < configuration.stdinQueueLimit
    }
    private var maxPayload: Int { session?.maxPayload ?? DoorsProtocol.minimumMaxPayload }

    private func step() {
        var descriptors: [pollfd] = []
        var roles: [Role] = []
        func watch(_ fd: Int32, _ events: Int32, _ role: Role) {
            descriptors.append(pollfd(fd: fd, events: Int16(events), revents: 0))
            roles.append(role)
        }
        watch(socket.raw, (readsSocket ? POLLIN : 0) | (outboundPending > 0 ? POLLOUT : 0), .socket)
        if state == .open {
            watch(mailbox.pollDescriptor, POLLIN, .wake)
            let room = hasOutboundRoom
            for (id, job) in jobs {
                guard case .exec(let exec) = job else { continue }
                if let stdin = exec.stdin, exec.pendingStdin > 0 { watch(stdin.raw, POLLOUT, .stdin(id)) }
                if room, let stdout = exec.stdout { watch(stdout.raw, POLLIN, .stdout(id)) }
                if room, let stderr = exec.stderr { watch(stderr.raw, POLLIN, .stderr(id)) }
            }
        }

        let ready = poll(&descriptors, nfds_t(descriptors.count), pollTimeout())
        if ready < 0 {
            guard errno == EINTR else {
                configuration.log("doors: poll: \(SystemError("poll"))")
                state = .closed
                return
            }
            return
        }

        for (index, descriptor) in descriptors.enumerated() where descriptor.revents != 0 && state != .closed {
            let events = Int32(descriptor.revents)
            switch roles[index] {
            case .socket:
                if events & POLLIN != 0 && readsSocket {
                    readSocket()
                } else if events & (POLLHUP | POLLERR | POLLNVAL) != 0 {
                    state = .closed  // the peer is gone; nothing more can be sent
                }
            case .wake:
                collectExits()
            case .stdin(let id):
                if case .exec(let exec)? = jobs[id] { feedStdin(exec) }
            case .stdout(let id):
                if case .exec(let exec)? = jobs[id], hasOutboundRoom { pumpOutput(exec, id: id, stderr: false) }
            case .stderr(let id):
                if case .exec(let exec)? = jobs[id], hasOutboundRoom { pumpOutput(exec, id: id, stderr: true) }
            }
        }

        if state == .open {
            enforceDeadlines()
            pumpFiles()
            finishExecs()
        }
        flush()
        if case .closing(let deadline) = state, outboundPending == 0 || MonotonicClock.nanoseconds() >= deadline {
            state = .closed
        }
    }

    /// 0 when a file job can make progress now, else until the nearest exec timeout or closing
    /// deadline, else forever.
    private func pollTimeout() -> Int32 {
        var nearest: UInt64?
        switch state {
        case .closed: return 0
        case .closing(let deadline): nearest = deadline
        case .open:
            for job in jobs.values {
                switch job {
                case .read, .list:
                    if hasOutboundRoom { return 0 }
                case .exec(let exec):
                    if let deadline = exec.deadline, exec.waitStatus == nil { nearest = min(nearest ?? deadline, deadline) }
                case .write:
                    break
                }
            }
        }
        guard let nearest else { return -1 }
        let now = MonotonicClock.nanoseconds()
        guard nearest > now else { return 0 }
        let milliseconds = (nearest - now + 999_999) / 1_000_000
        return Int32(min(milliseconds, 60_000))
    }

    // MARK: - Socket

    private func readSocket() {
        let wanted = min(decoder.freeCapacity, scratch.count)
        guard wanted > 0 else { return }
        let count: Int?
        do {
            count = try socket.read(into: &scratch, count: wanted)
        } catch {
            state = .closed
            return
        }
        guard let count else { return }
        guard count > 0 else {
            state = .closed  // end of stream: the host has closed (or half-closed) the connection
            return
        }
        decoder.append(scratch[0..<count])
        while state == .open {
            let frame: Frame?
            do throws(DoorsError) {
                frame = try decoder.next()
            } catch {
                reject(error)
                continue
            }
            guard let frame else { break }
            handle(frame)
        }
    }

    /// Sends what the socket takes now; the rest waits for POLLOUT.
    private func flush() {
        while outboundPending > 0 && state != .closed {
            let fd = socket.raw
            let head = outboundHead
            let sent = outbound.withUnsafeBytes { bytes in
                retryingEINTR { Glibc.send(fd, bytes.baseAddress! + head, bytes.count - head, Int32(MSG_NOSIGNAL)) }
            }
            if sent < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                state = .closed  // EPIPE, ECONNRESET: the peer is gone
                break
            }
            outboundHead += sent
        }
        if outboundHead == outbound.count {
            outbound.removeAll(keepingCapacity: outbound.capacity <= 2 * configuration.outboundLimit)
            outboundHead = 0
        } else if outboundHead >= 64 << 10 && outboundHead * 2 >= outbound.count {
            outbound.removeSubrange(0..<outboundHead)
            outboundHead = 0
        }
    }

    private func send(_ frame: Frame) {
        do throws(DoorsError) {
            try encoder.encode(frame, into: &outbound)
        } catch {
            configuration.log("doors: cannot encode \(frame.type) for request \(frame.requestID): \(error)")
            guard frame.type != .error else { return }
            let reply = ErrorReply(code: .internal, message: boundedMessage("cannot encode \(frame.type): \(error)"))
            send(Frame(requestID: frame.requestID, .error(reply)))
        }
    }

    private func send(_ id: UInt32, _ error: SystemError) {
        send(Frame(requestID: id, .error(error.reply)))
    }

    private func send(_ id: UInt32, _ code: ErrorCode, _ message: String) {
        send(Frame(requestID: id, .error(ErrorReply(code: code, message: boundedMessage(message)))))
    }

    /// A connection error: everything in flight is abandoned, `reply` (on request 0) goes out,
    /// and the connection closes once it is flushed.
    private func failConnection(_ code: ErrorCode, _ message: String) {
        guard state == .open else { return }
        configuration.log("doors: closing a connection: \(message)")
        abortAll()
        send(0, code, message)
        state = .closing(deadline: MonotonicClock.nanoseconds() + UInt64(configuration.closeFlushMilliseconds) * 1_000_000)
    }

    /// A frame the decoder refused. A broken header is fatal; a broken payload costs only its
    /// request, which ends with the Error (so a job in flight on that id is abandoned).
    private func reject(_ error: DoorsError) {
        let reply = error.reply
        guard session != nil, !error.isFatal, reply.requestID != 0 else {
            let code: ErrorCode = if case .error(let body) = reply.message { body.code } else { .invalidRequest }
            failConnection(code, error.description)
            return
        }
        abort(reply.requestID)
        send(reply)
    }

    // MARK: - Frames

    private func handle(_ frame: Frame) {
        let id = frame.requestID
        guard session != nil else { return handshake(frame) }
        switch frame.message {
        case .hello:
            failConnection(.invalidRequest, "a second Hello on the connection")
        case .error:
            // On request 0 the host is closing the connection; on another id it answers a
            // guest request, and this guest sends none in v1.
            if id == 0 {
                abortAll()
                state = .closed
            }
        case .ok, .pong:
            break  // answers to guest requests; none are sent in v1
        case .started, .stdoutData, .stderrData, .exit, .statResult, .listEntries, .listEnd, .resolved:
            failConnection(.invalidRequest, "\(frame.type) frames are sent by the guest, not to it")

        case .ping(let nonce):
            if admit(id) { send(Frame(requestID: id, .pong(nonce: nonce))) }
        case .exec(let request):
            if admit(id) { startExec(id, request) }
        case .writeFile(let request):
            if admit(id) { startWrite(id, request) }
        case .readFile(let request):
            if admit(id) { startRead(id, request) }
        case .list(let path):
            if admit(id) { startList(id, path) }
        case .stat(let request):
            guard admit(id) else { return }
            do throws(SystemError) {
                send(Frame(requestID: id, .statResult(try FileOperations.stat(request))))
            } catch {
                send(id, error)
            }
        case .resolve(let path):
            guard admit(id) else { return }
            do throws(SystemError) {
                send(Frame(requestID: id, .resolved(path: try FileOperations.resolve(path))))
            } catch {
                send(id, error)
            }
        case .mkdir(let request):
            guard admit(id) else { return }
            do throws(SystemError) {
                try FileOperations.makeDirectory(request)
                send(Frame(requestID: id, .ok(count: 0)))
            } catch {
                send(id, error)
            }
        case .remove(let request):
            guard admit(id) else { return }
            do throws(SystemError) {
                try FileOperations.remove(request)
                send(Frame(requestID: id, .ok(count: 0)))
            } catch {
                send(id, error)
            }

        // Requester-side frames for an id not in flight are dropped: they race with completion.
        case .stdinData(let bytes):
            guard let job = jobs[id] else { return }
            guard case .exec(let exec) = job else { return mismatch(id, frame.type, job) }
            guard exec.stdin != nil, !exec.stdinEndRequested, !bytes.isEmpty else { return }
            exec.stdinBuffer.append(contentsOf: bytes)
            queuedStdin += bytes.count
            feedStdin(exec)
        case .stdinEnd:
            guard let job = jobs[id] else { return }
            guard case .exec(let exec) = job else { return mismatch(id, frame.type, job) }
            exec.stdinEndRequested = true
            feedStdin(exec)
        case .kill(let signal):
            guard let job = jobs[id] else { return }
            guard case .exec(let exec) = job else { return mismatch(id, frame.type, job) }
            reaper.signal(exec.pid, Int32(signal), group: false)
        case .cancel:
            guard let job = jobs[id] else { return }
            if case .exec(let exec) = job {
                // An exec still ends with Exit: the kill shows there.
                reaper.signal(exec.pid, SIGKILL, group: true)
            } else {
                abort(id)
                send(id, .cancelled, "cancelled")
            }
        case .fileData(let bytes):
            guard let job = jobs[id] else { return }
            guard case .write(let write) = job else { return mismatch(id, frame.type, job) }
            do throws(SystemError) {
                try write.file.writeAll(bytes)
                write.written += UInt64(bytes.count)
            } catch {
                abort(id)
                send(id, SystemError("write", errno: error.errno, subject: write.path))
            }
        case .fileEnd:
            guard let job = jobs[id] else { return }
            guard case .write(let write) = job else { return mismatch(id, frame.type, job) }
            jobs[id] = nil
            do throws(SystemError) {
                // close(2) is where some filesystems report a failed write-back.
                try write.file.closeReportingErrors()
                send(Frame(requestID: id, .ok(count: write.written)))
            } catch {
                send(id, SystemError("close", errno: error.errno, subject: write.path))
            }
        }
    }

    private func handshake(_ frame: Frame) {
        guard case .hello(let remote) = frame.message else {
            failConnection(.invalidRequest, "expected Hello as the first frame, got \(frame.type)")
            return
        }
        do throws(DoorsError) {
            let agreed = try Session.negotiate(local: localHello, remote: remote)
            session = agreed
            decoder.apply(agreed)
            encoder = FrameEncoder(session: agreed)
        } catch {
            failConnection(.unsupportedVersion, error.description)
        }
    }

    /// Whether a new request may start on `id`. Reusing an id in flight is a connection error
    /// (an Error on it would look like the end of the first request).
    private func admit(_ id: UInt32) -> Bool {
        if jobs[id] != nil {
            failConnection(.busy, "request id \(id) reused while in flight")
            return false
        }
        if id >= 0x8000_0000 {
            send(id, .invalidRequest, "request ids from 0x80000000 up are the guest's")
            return false
        }
        return true
    }

    /// Whether a job that holds descriptors may start now.
    private func admitJob(_ id: UInt32) -> Bool {
        guard jobs.count < configuration.maxRequestsPerConnection else {
            send(id, .busy, "\(jobs.count) requests in flight on this connection")
            return false
        }
        return true
    }

    /// A requester-side frame that does not belong to the kind of request in flight on its id:
    /// the request ends with an Error.
    private func mismatch(_ id: UInt32, _ type: FrameType, _ job: Job) {
        abort(id)
        send(id, .invalidRequest, "\(type) frame for a \(job.name) request")
    }

    /// Ends request `id` without a terminal frame: its child is killed, its files closed.
    private func abort(_ id: UInt32) {
        guard let job = jobs.removeValue(forKey: id) else { return }
        if case .exec(let exec) = job {
            requestByPID[exec.pid] = nil
            queuedStdin -= exec.pendingStdin
            if exec.waitStatus == nil { reaper.abandon(exec.pid) }
        }
        if jobs.isEmpty { fileScratch = [] }
    }

    private func abortAll() {
        for id in Array(jobs.keys) { abort(id) }
    }

    // MARK: - Exec

    private func startExec(_ id: UInt32, _ request: ExecRequest) {
        guard admitJob(id) else { return }
        do throws(SystemError) {
            let launched = try ProcessLauncher.launch(
                request, defaultSearchPath: configuration.defaultSearchPath,
                forcedEnvironment: configuration.forcedEnvironment, reaper: reaper, mailbox: mailbox)
            let exec = ExecJob(launched)
            if let timeout = request.timeoutMilliseconds {
                exec.deadline = MonotonicClock.nanoseconds() + UInt64(timeout) * 1_000_000
            }
            jobs[id] = .exec(exec)
            requestByPID[exec.pid] = id
            send(Frame(requestID: id, .started(pid: exec.pid)))
        } catch {
            send(id, error)
        }
    }

    private func feedStdin(_ exec: ExecJob) {
        guard let stdin = exec.stdin else { return }
        while exec.pendingStdin > 0 {
            let head = exec.stdinHead
            let written: Int
            do throws(SystemError) {
                written = try exec.stdinBuffer.withUnsafeBytes { bytes in
                    Result { () throws(SystemError) in try stdin.writeSome(UnsafeRawBufferPointer(rebasing: bytes[head...])) }
                }.get()
            } catch {
                // EPIPE: the child closed its stdin or exited; what it did not read is dropped.
                closeStdin(exec)
                return
            }
            guard written > 0 else { break }
            exec.stdinHead += written
            queuedStdin -= written
        }
        if exec.pendingStdin == 0 {
            exec.stdinBuffer.removeAll(keepingCapacity: exec.stdinBuffer.capacity <= Self.scratchSize)
            exec.stdinHead = 0
            if exec.stdinEndRequested { closeStdin(exec) }
        } else if exec.stdinHead >= Self.scratchSize && exec.stdinHead * 2 >= exec.stdinBuffer.count {
            exec.stdinBuffer.removeSubrange(0..<exec.stdinHead)
            exec.stdinHead = 0
        }
    }

    private func closeStdin(_ exec: ExecJob) {
        queuedStdin -= exec.pendingStdin
        exec.stdinBuffer = []
        exec.stdinHead = 0
        exec.stdin = nil
    }

    /// One read from a child's stdout or stderr, sent as a data frame. After the child has
    /// been reaped, an empty pipe counts as done: descendants may hold it open indefinitely.
    private func pumpOutput(_ exec: ExecJob, id: UInt32, stderr: Bool) {
        guard let pipe = stderr ? exec.stderr : exec.stdout else { return }
        let count: Int?
        do {
            count = try pipe.read(into: &scratch, count: min(scratch.count, maxPayload))
        } catch {
            configuration.log("doors: reading the output of pid \(exec.pid): \(error)")
            count = 0
        }
        var done = false
        switch count {
        case nil:
            done = exec.waitStatus != nil
        case 0?:
            done = true
        case let n?:
            let bytes = Array(scratch[0..<n])
            send(Frame(requestID: id, stderr ? .stderrData(bytes) : .stdoutData(bytes)))
            if exec.waitStatus != nil {
                exec.drainedAfterExit += n
                done = exec.drainedAfterExit >= configuration.drainAfterExitLimit
            }
        }
        if done {
            if stderr { exec.stderr = nil } else { exec.stdout = nil }
        }
    }

    private func collectExits() {
        for (pid, status) in mailbox.collect() {
            guard let id = requestByPID.removeValue(forKey: pid), case .exec(let exec)? = jobs[id] else { continue }
            exec.waitStatus = status
            closeStdin(exec)
        }
    }

    private func enforceDeadlines() {
        let now = MonotonicClock.nanoseconds()
        for job in jobs.values {
            guard case .exec(let exec) = job, let deadline = exec.deadline, deadline <= now else { continue }
            exec.deadline = nil
            if exec.waitStatus == nil && reaper.signal(exec.pid, SIGKILL, group: true) {
                exec.timedOut = true
            }
        }
    }

    /// Drains the pipes of reaped children and sends Exit for those that are done.
    private func finishExecs() {
        for (id, job) in jobs {
            guard case .exec(let exec) = job, exec.waitStatus != nil else { continue }
            while hasOutboundRoom && (exec.stdout != nil || exec.stderr != nil) {
                pumpOutput(exec, id: id, stderr: false)
                pumpOutput(exec, id: id, stderr: true)
            }
            guard exec.isFinished, let status = exec.waitStatus else { continue }
            jobs[id] = nil
            let (exited, value) = WaitStatus.termination(status)
            let termination: Termination = exited ? .exited(code: value) : .signaled(signal: value)
            send(Frame(requestID: id, .exit(ExitReport(status: termination, timedOut: exec.timedOut))))
        }
    }

    // MARK: - Files

    private func startWrite(_ id: UInt32, _ request: WriteFileRequest) {
        guard admitJob(id) else { return }
        do throws(SystemError) {
            jobs[id] = .write(WriteJob(file: try FileOperations.openForWriting(request), path: request.path))
        } catch {
            send(id, error)
        }
    }

    private func startRead(_ id: UInt32, _ request: ReadFileRequest) {
        guard admitJob(id) else { return }
        guard let offset = Int64(exactly: request.offset) else {
            send(id, SystemError("read", errno: EINVAL, subject: request.path))
            return
        }
        do throws(SystemError) {
            let file = try FileOperations.openForReading(request.path)
            jobs[id] = .read(ReadJob(file: file, path: request.path, offset: offset, remaining: request.length))
        } catch {
            send(id, error)
        }
    }

    private func startList(_ id: UInt32, _ path: String) {
        guard admitJob(id) else { return }
        do throws(SystemError) {
            jobs[id] = .list(ListJob(reader: try DirectoryReader(path: path)))
        } catch {
            send(id, error)
        }
    }

    /// One chunk for each streaming ReadFile and List, while the outbound queue has room.
    private func pumpFiles() {
        for (id, job) in jobs {
            guard hasOutboundRoom else { return }
            switch job {
            case .read(let read): pumpRead(read, id: id)
            case .list(let list): pumpList(list, id: id)
            case .exec, .write: break
            }
        }
    }

    private func pumpRead(_ read: ReadJob, id: UInt32) {
        let wanted = Int(min(UInt64(maxPayload), read.remaining ?? UInt64.max))
        guard wanted > 0 else {
            jobs[id] = nil
            send(Frame(requestID: id, .fileEnd))
            return
        }
        if fileScratch.count < maxPayload { fileScratch = uninitializedBytes(maxPayload) }
        let fd = read.file.raw
        let offset = read.offset
        let count = fileScratch.withUnsafeMutableBytes { bytes in
            retryingEINTR { pread(fd, bytes.baseAddress, wanted, off_t(offset)) }
        }
        guard count >= 0 else {
            abort(id)
            send(id, SystemError("read", subject: read.path))
            return
        }
        guard count > 0 else {
            jobs[id] = nil
            send(Frame(requestID: id, .fileEnd))
            return
        }
        send(Frame(requestID: id, .fileData(Array(fileScratch[0..<count]))))
        read.offset += Int64(count)
        if let remaining = read.remaining { read.remaining = remaining - UInt64(count) }
    }

    private func pumpList(_ list: ListJob, id: UInt32) {
        if list.batches.isEmpty {
            let entries: [DirectoryEntry]
            do throws(SystemError) {
                entries = try list.reader.next(limit: DoorsLimits.maxListBatch)
            } catch {
                abort(id)
                send(id, error)
                return
            }
            guard !entries.isEmpty else {
                jobs[id] = nil
                send(Frame(requestID: id, .listEnd))
                return
            }
            list.batches = DirectoryEntry.batches(entries, maxPayload: maxPayload)
        }
        send(Frame(requestID: id, .listEntries(list.batches.removeFirst())))
    }
}

/// A byte array of `count` bytes whose contents are not set (and whose pages are not touched)
/// until something reads into it.
func uninitializedBytes(_ count: Int) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}
