import CGuestSys
import Doors
import Glibc
import POSIX

/// Settings and limits of the guest's Doors server. The defaults are what momin-init uses.
public struct DoorsServerConfiguration: Sendable {
    /// Sent in the server's Hello.
    public var software = "momin-init"
    /// Connections served at once; one more gets Hello, `Error(0, busy)` and is closed.
    public var maxConnections = 128
    /// Exec, WriteFile, ReadFile and List requests in flight on one connection; one more is
    /// answered `Error(busy)`.
    public var maxRequestsPerConnection = 256
    /// Encoded frames queued for one connection's socket before the server stops producing
    /// output (child pipes, file reads, listings) and stops reading requests.
    public var outboundLimit = 512 << 10
    /// Stdin bytes queued for one connection's children before the server stops reading the
    /// connection.
    public var stdinQueueLimit = 512 << 10
    /// Output read from a child's pipes after it was reaped, before they are closed anyway
    /// (descendants that outlive it may keep them open and writing).
    public var drainAfterExitLimit = 1 << 20
    /// How long a connection that failed (a bad frame) tries to deliver its Error before closing.
    public var closeFlushMilliseconds = 2000
    /// PATH for a bare program name when the request's environment has none.
    public var defaultSearchPath = "/usr/bin:/bin:/usr/sbin:/sbin"
    /// Variables every started process gets, replacing any of the same name the request sent:
    /// momin-init sets `EgressProtocol.proxyEnvironment` here when egress is on.
    public var forcedEnvironment: [(name: String, value: String)] = []
    /// Where the server reports trouble it cannot tell a peer about (one line, no newline).
    public var log: @Sendable (String) -> Void = { _ in }

    public init() {}
}

/// The guest side of Doors: serves Hands requests (exec, files, ping) from the host over
/// stream connections, each on its own thread.
///
/// Creating a server ignores SIGPIPE (a write to a closed pipe or socket must fail with EPIPE,
/// not kill PID 1) and starts the one thread that reaps this process's children.
public final class DoorsServer: Sendable {
    public let configuration: DoorsServerConfiguration
    private let connectionCount = Counter()

    public init(configuration: DoorsServerConfiguration = DoorsServerConfiguration()) throws(SetupError) {
        self.configuration = configuration
        var ignore = sigaction()
        ignore.__sigaction_handler.sa_handler = SIG_IGN
        sigemptyset(&ignore.sa_mask)
        guard sigaction(SIGPIPE, &ignore, nil) == 0 else { throw SetupError(SystemError("sigaction(SIGPIPE)")) }
        do throws(SystemError) {
            try ChildReaper.shared.start()
        } catch {
            throw SetupError(error)
        }
    }

    /// Connections being served now.
    public var activeConnections: Int { connectionCount.value }

    /// Serves one connected stream socket on the calling thread until it closes, and closes it.
    public func serveConnection(_ fd: Int32) {
        let socket = Descriptor(fd)
        guard connectionCount.increment(limit: configuration.maxConnections) else {
            refuse(socket)
            return
        }
        defer { connectionCount.decrement() }
        do throws(SystemError) {
            try Connection(socket: socket, configuration: configuration, reaper: ChildReaper.shared).run()
        } catch {
            configuration.log("doors: cannot serve a connection: \(error)")
        }
    }

    /// Serves one connected stream socket on a new thread; the socket is closed when that ends
    /// (or at once when no thread can be started).
    public func startConnection(_ fd: Int32) {
        do throws(SystemError) {
            try POSIXThread.detach(name: "doors-conn") { [self] in self.serveConnection(fd) }
        } catch {
            configuration.log("doors: cannot start a connection thread: \(error)")
            _ = close(fd)
        }
    }

    /// Accepts connections on a listening socket forever, each served on its own thread.
    /// Transient failures (EMFILE, ENOMEM, an aborted connection) are logged and retried.
    public func acceptForever(listener: Int32) -> Never {
        AcceptLoop.run(listener: listener, name: "doors", log: configuration.log) { startConnection($0) }
    }

    /// Over the connection limit: Hello, then `Error(0, busy)`, best effort, then close.
    private func refuse(_ socket: Descriptor) {
        var bytes: [UInt8] = []
        let encoder = FrameEncoder()
        let message = "\(configuration.maxConnections) connections are being served already"
        _ = try? encoder.encode(Frame(requestID: 0, .hello(Hello(software: truncated(configuration.software, toBytes: DoorsLimits.maxSoftwareLength)))), into: &bytes)
        _ = try? encoder.encode(Frame(requestID: 0, .error(ErrorReply(code: .busy, message: message))), into: &bytes)
        try? socket.setNonBlocking()
        _ = bytes.withUnsafeBytes { Glibc.send(socket.raw, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        configuration.log("doors: refused a connection: \(message)")
    }
}

/// A counter shared between threads.
final class Counter: @unchecked Sendable {
    private let lock = Lock()
    private var count = 0

    var value: Int { lock.withLock { count } }

    func increment(limit: Int) -> Bool {
        lock.withLock {
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func decrement() {
        lock.withLock { count -= 1 }
    }
}
