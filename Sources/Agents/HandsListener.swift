import Doors
import Glibc
import GuestClient
import POSIX
import Synchronization

/// Serves the hands calls of one VM: momin-init's relay reaches the host at the VMM's
/// `PATH_PORT` socket (Firecracker's convention for guest-initiated vsock connections,
/// docs/vsock.md), where this listens. One call per connection, each on a thread of its own
/// (door receives and waits block), at most `maxConnections` at once; the frame is read with
/// its bounds checked before anything is allocated, and a malformed one is answered, not run.
public final class HandsListener: @unchecked Sendable {
    public let path: String
    public static let maxConnections = 64
    private let server: SocketServer
    /// How long a caller has to send its whole frame, and to take its whole reply.
    let frameDeadline: Duration
    let replyDeadline: Duration
    private let handler: @Sendable (HandsCall, HandsCaller) -> HandsAnswer

    /// Listens at `place.path` (a socket file left there is replaced; anything else is an error)
    /// and starts accepting.
    ///
    /// The socket is made in `place.staging`, a directory only the host can write, given its
    /// mode there (the jailed VMM, another uid, must be able to connect), and then renamed into
    /// place. Made in place, the chmod(2) by path would run in a directory the jail owns, where
    /// the VMM could have swapped the new socket for a symlink to any host file; rename(2)
    /// never follows a symlink, and replaces whatever the jail put at the path.
    ///
    /// A caller has `frameDeadline` from being accepted to send its whole call, and
    /// `replyDeadline` to take its whole reply (a reply it did not take is undelivered).
    public init(place: HandsSocketPlace, frameDeadline: Duration = .seconds(30), replyDeadline: Duration = .seconds(30),
                handler: @escaping @Sendable (HandsCall, HandsCaller) -> HandsAnswer) throws(AgentError) {
        self.path = place.path
        self.handler = handler
        self.frameDeadline = frameDeadline
        self.replyDeadline = replyDeadline
        server = SocketServer(fd: try StagedSocket.listen(place), path: place.path, limit: Self.maxConnections)
        try server.start(name: "hands") { [self] client in serve(client) } refuse: { client in
            // On the accepting thread: the refusal is small and gets a short deadline.
            Self.reply(client, .failed(.failed, "the host is already serving \(Self.maxConnections) hands calls of this VM"),
                       until: MonotonicClock.deadline(after: 1))
        }
    }

    /// Stops accepting and removes the socket file; calls already running finish.
    public func stop() { server.stop() }

    private func serve(_ client: Int32) {
        defer { close(client) }
        // momin-init writes a call whole: the frame must be here within `frameDeadline` of the
        // connection, however its bytes trickle in. Once read, the call may block as long as
        // it asks; then the reply has `replyDeadline` to be taken.
        let frameBy = MonotonicClock.deadline(after: Self.seconds(frameDeadline))
        guard let header = FileIO.readExactly(client, count: HandsCallProtocol.headerSize, until: frameBy) else { return }
        let call: HandsCall
        do {
            let (kind, length) = try HandsCallCodec.payloadLength(header: header)
            guard let payload = FileIO.readExactly(client, count: length, until: frameBy) else { return }
            call = try HandsCallCodec.decodeCall(kind: kind, payload: payload)
        } catch {
            reply(client, .failed(.invalid, "malformed hands call: \(error)"))
            return
        }
        let answer = handler(call, HandsCaller(fd: client))
        if !reply(client, answer.reply) { answer.undelivered?() }
    }

    static func seconds(_ span: Duration) -> Double {
        Double(span.components.seconds) + Double(span.components.attoseconds) / 1e18
    }

    /// Writes the reply within `replyDeadline`; false when the caller is gone or did not take it
    /// in time.
    @discardableResult
    func reply(_ fd: Int32, _ reply: HandsReply) -> Bool {
        Self.reply(fd, reply, until: MonotonicClock.deadline(after: Self.seconds(replyDeadline)))
    }

    @discardableResult
    static func reply(_ fd: Int32, _ reply: HandsReply, until deadline: UInt64) -> Bool {
        (try? FileIO.sendAll(fd, HandsCallCodec.encode(reply), until: deadline)) != nil
    }
}

/// A listening socket's accept loop: each connection served on a thread of its own, at most
/// `limit` at once (one more is refused on the accepting thread and closed).
public final class SocketServer: @unchecked Sendable {
    public let fd: Int32
    /// The socket file removed at `stop`; nil for a TCP listener.
    public let path: String?
    public let limit: Int
    private let active = Monitor()
    private var connections = 0
    private var stopped = false

    public init(fd: Int32, path: String?, limit: Int) {
        self.fd = fd
        self.path = path
        self.limit = limit
    }

    /// Starts accepting on a thread named `NAME-accept`; each connection is served by `serve` on
    /// one named `NAME-conn`, which also closes it.
    public func start(name: String, serve: @escaping @Sendable (Int32) -> Void, refuse: @escaping @Sendable (Int32) -> Void) throws(AgentError) {
        do { try POSIXThread.detach(name: "\(name)-accept") { [self] in acceptLoop(name: name, serve: serve, refuse: refuse) } } catch {
            close(fd)
            throw .io("cannot start the \(name) listener: \(error)")
        }
    }

    /// Stops accepting and removes the socket file, if any; connections already open run to their end.
    public func stop() {
        let first = active.holding { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        shutdown(fd, Int32(SHUT_RDWR))
        if let path { unlink(path) }
    }

    private func acceptLoop(name: String, serve: @escaping @Sendable (Int32) -> Void, refuse: (Int32) -> Void) {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                break  // the listener was shut down
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            let admitted = active.holding { () -> Bool in
                guard connections < limit else { return false }
                connections += 1
                return true
            }
            guard admitted else {
                refuse(client)
                close(client)
                continue
            }
            do {
                try POSIXThread.detach(name: "\(name)-conn") { [self] in
                    serve(client)
                    active.holding { connections -= 1 }
                }
            } catch {
                active.holding { connections -= 1 }
                close(client)
            }
        }
        close(fd)
    }
}

/// Makes listening sockets where a jailed VMM connects (see `HandsListener.init`).
enum StagedSocket {
    /// Numbers the sockets this process stages, so that two never share a name.
    private static let staged = Atomic<Int>(0)

    /// A listening socket at `place.path`, made in `place.staging` with mode 0666 and renamed
    /// into place (a socket file left there is replaced; anything else is an error).
    static func listen(_ place: HandsSocketPlace) throws(AgentError) -> Int32 {
        let path = place.path
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else { throw .io("\(path) exists and is not a socket") }
            unlink(path)
        }
        let staged = place.staging + "/.sock-\(getpid())-\(Self.staged.add(1, ordering: .relaxed).newValue).sock"
        unlink(staged)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .io("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(staged.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path), path.utf8.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw .io("socket path \(path) or \(staged) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        // The jailed VMM connects as its own uid; the socket directory (the VM's, mode 0700)
        // is what keeps everyone else out.
        guard bound == 0, chmod(staged, 0o666) == 0, Glibc.listen(fd, 64) == 0, rename(staged, path) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            unlink(staged)
            throw .io("cannot listen on \(path): \(why)")
        }
        return fd
    }
}

/// Where an agent's hands calls arrive: the socket's path, in the directory its VM's jailed
/// VMM owns, and a directory on the same file system that only the host can write, where the
/// socket is made before it is moved into place (`HandsListener.init`).
public struct HandsSocketPlace: Sendable, Equatable {
    public var path: String
    public var staging: String

    public init(path: String, staging: String) {
        self.path = path
        self.staging = staging
    }

    /// The same VM's socket for guest connections to host port `port`: the VMM's `PATH_PORT`
    /// convention (docs/vsock.md), `path` with its port replaced.
    public func sibling(port: UInt32) -> HandsSocketPlace {
        let base = path.utf8.lastIndex(of: UInt8(ascii: "_")).map { String(path[..<$0]) } ?? path
        return HandsSocketPlace(path: "\(base)_\(port)", staging: staging)
    }
}

/// A reply, and what to undo when it cannot be delivered (a door message taken off its queue
/// for a caller that has gone goes back to the front).
public struct HandsAnswer: Sendable {
    public var reply: HandsReply
    public var undelivered: (@Sendable () -> Void)?

    public init(_ reply: HandsReply, undelivered: (@Sendable () -> Void)? = nil) {
        self.reply = reply
        self.undelivered = undelivered
    }
}

/// POLLRDHUP (<poll.h>, a GNU extension Swift's Glibc module leaves out): the peer closed its
/// writing side.
private let pollReadHangUp: Int16 = 0x2000

/// The connection a call came on, for calls that block: momin-init's relay closes it when the
/// agent gives up (docs/hands.md), and then nothing should be taken on the agent's behalf.
public final class HandsCaller: Sendable {
    private let fd: Int32

    init(fd: Int32) { self.fd = fd }

    /// A caller that is never gone (calls made in-process).
    public static let inProcess = HandsCaller(fd: -1)

    /// True once the other end has closed: after its one frame the caller sends nothing more,
    /// so anything readable is end of file (or an error).
    public var hasHungUp: Bool {
        guard fd >= 0 else { return false }
        var entry = pollfd(fd: fd, events: Int16(POLLIN) | pollReadHangUp, revents: 0)
        guard poll(&entry, 1, 0) == 1 else { return false }
        return entry.revents & (Int16(POLLIN) | pollReadHangUp | Int16(POLLHUP) | Int16(POLLERR)) != 0
    }
}

public enum AgentError: Error, CustomStringConvertible {
    case io(String)

    public var description: String {
        switch self {
        case .io(let why): why
        }
    }
}
