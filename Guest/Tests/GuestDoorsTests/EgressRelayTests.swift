import CGuestSys
import Doors
import Glibc
@testable import GuestDoors
import POSIX
import Testing

/// The egress relay with a real TCP client on 127.0.0.1 and the host as one end of a socketpair
/// (or a local TCP connection, where a reset must be sent). These run in the serialized
/// ServerTests, as the descriptor counts there see the whole process.
extension ServerTests {
    @Suite struct EgressRelayTests {
        @Test(.timeLimit(.minutes(1))) func copiesEightMebibytesEachWayAtOnce() throws {
            let host = try FakeHost()
            let ports = Shared<[UInt32]>([])
            let relay = EgressRelay { port in
                ports.update { $0.append(port) }
                return host.connect()
            }
            let client = try connectThrough(relay, route: .brain)
            defer { close(client) }
            let hostEnd = host.end
            let size = 8 << 20
            // Both sides write at once, then half-close; each reads to the other's end.
            background { sendGenerated(client, seed: 21, count: size) }
            background { sendGenerated(hostEnd, seed: 22, count: size) }
            let upstream = Shared<Received?>(nil)
            background { upstream.update { $0 = receiveAll(hostEnd, timeoutMilliseconds: 30_000) } }
            let downstream = receiveAll(client, timeoutMilliseconds: 30_000)

            #expect(downstream == Received(count: size, checksum: generatedChecksum(seed: 22, count: size), reset: false))
            #expect(eventually(seconds: 30) { upstream.value != nil })
            #expect(upstream.value == Received(count: size, checksum: generatedChecksum(seed: 21, count: size), reset: false))
            #expect(ports.value == [EgressProtocol.brainPort])
            #expect(eventually { relay.activeConnections == 0 })
        }

        @Test func anEndOfStreamIsPassedOnAsAHalfClose() throws {
            // The client ends its request first; the host's reply still comes back.
            let host = try FakeHost()
            let relay = EgressRelay { _ in host.connect() }
            let client = try connectThrough(relay)
            defer { close(client) }
            let request = Array("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n".utf8)
            try writeAll(fd: client, request)
            #expect(shutdown(client, Int32(SHUT_WR)) == 0)
            #expect(try readUntilEnd(host.end) == request)
            let reply = Array("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".utf8)
            try writeAll(fd: host.end, reply)
            #expect(shutdown(host.end, Int32(SHUT_WR)) == 0)
            #expect(receiveAll(client) == Received(reply))
            #expect(eventually { relay.activeConnections == 0 })

            // The host ends first; the client still sends after it has read that end.
            let second = try FakeHost()
            let relay2 = EgressRelay { _ in second.connect() }
            let client2 = try connectThrough(relay2)
            defer { close(client2) }
            let banner = Array("banner\r\n".utf8)
            try writeAll(fd: second.end, banner)
            #expect(shutdown(second.end, Int32(SHUT_WR)) == 0)
            #expect(receiveAll(client2) == Received(banner))
            let late = Array("sent after the host's end".utf8)
            try writeAll(fd: client2, late)
            #expect(shutdown(client2, Int32(SHUT_WR)) == 0)
            #expect(try readUntilEnd(second.end) == late)
            #expect(eventually { relay2.activeConnections == 0 })
        }

        @Test(.timeLimit(.minutes(1))) func anUnreachableHostResetsTheClientAtOnce() throws {
            let lines = Shared<[String]>([])
            var configuration = EgressRelayConfiguration()
            configuration.log = { line in lines.update { $0.append(line) } }
            let relay = EgressRelay(configuration: configuration) { _ in
                errno = ECONNRESET
                return -1
            }
            let client = try connectThrough(relay)
            defer { close(client) }
            let start = MonotonicClock.nanoseconds()
            #expect(receiveAll(client, timeoutMilliseconds: 5000) == Received([], reset: true))
            #expect(MonotonicClock.nanoseconds() - start < 2_000_000_000)
            #expect(lines.value == ["egress proxy: the host serves no egress on vsock port 1026: Connection reset by peer"])
            #expect(eventually { relay.activeConnections == 0 })
        }

        @Test(.timeLimit(.minutes(1))) func aConnectionOverTheLimitIsResetAtOnce() throws {
            let lines = Shared<[String]>([])
            var configuration = EgressRelayConfiguration()
            configuration.maxConnections = 1
            configuration.log = { line in lines.update { $0.append(line) } }
            let host = try FakeHost()
            let relay = EgressRelay(configuration: configuration) { _ in host.connect() }
            let first = try connectThrough(relay)
            #expect(eventually { relay.activeConnections == 1 })

            let second = try connectThrough(relay)
            defer { close(second) }
            #expect(receiveAll(second, timeoutMilliseconds: 5000) == Received([], reset: true))
            #expect(lines.value == ["egress proxy: refused a connection: 1 are being relayed already"])
            #expect(host.connections == 1)

            // The first still works, and ends when both of its sides have.
            try writeAll(fd: first, Array("still here".utf8))
            #expect(try readExactly(host.end, count: 10) == Array("still here".utf8))
            close(first)
            host.hangUp()
            #expect(eventually { relay.activeConnections == 0 })
        }

        @Test func aClientResetClosesTheHostSide() throws {
            let host = try FakeHost()
            let relay = EgressRelay { _ in host.connect() }
            let client = try connectThrough(relay)
            try writeAll(fd: client, Array("CONNECT example.com:443 HTTP/1.1\r\n".utf8))
            _ = try readExactly(host.end, count: 34)
            resetAndClose(client)
            // Closed, not half-closed: a socketpair end sees POLLHUP only when its peer is gone.
            #expect(eventually {
                var descriptor = pollfd(fd: host.end, events: 0, revents: 0)
                return poll(&descriptor, 1, 0) == 1 && Int32(descriptor.revents) & POLLHUP != 0
            })
            #expect(eventually { relay.activeConnections == 0 })
        }

        @Test(.timeLimit(.minutes(1))) func aHostResetResetsTheClient() throws {
            // The host over local TCP, so that it can send a reset.
            let hostListener = try EgressRelay.listen(address: "127.0.0.1", port: 0)
            defer { close(hostListener) }
            let hostPort = UInt16(guest_socket_port(hostListener))
            let relay = EgressRelay { _ in guest_tcp4_connect("127.0.0.1", hostPort) }
            let client = try connectThrough(relay)
            defer { close(client) }
            let hostEnd = guest_accept_cloexec(hostListener)
            #expect(hostEnd >= 0)
            try writeAll(fd: hostEnd, Array("HTTP/1.1 200 OK\r\n\r\npart of a bo".utf8))
            #expect(try readExactly(client, count: 31) == Array("HTTP/1.1 200 OK\r\n\r\npart of a bo".utf8))
            resetAndClose(hostEnd)
            // A cut-off reply must not look like a complete one.
            #expect(receiveAll(client, timeoutMilliseconds: 5000) == Received([], reset: true))
            #expect(eventually { relay.activeConnections == 0 })
        }

        @Test func listensOnAnyLoopbackAddress() throws {
            // 127.0.0.2 (the Brain's) is local as soon as lo is up: all of 127/8 is.
            let listener = try EgressRelay.listen(address: "127.0.0.2", port: 0)
            defer { close(listener) }
            let port = guest_socket_port(listener)
            #expect(port > 0)
            let client = guest_tcp4_connect("127.0.0.2", UInt16(port))
            #expect(client >= 0)
            close(client)
            #expect(throws: SetupError.self) { _ = try EgressRelay.listen(address: "localhost", port: 0) }
            #expect(throws: SetupError.self) { _ = try EgressRelay.listen(address: "127.0.0.2", port: UInt16(port)) }
        }

        @Test func theRoutesAreTheProtocols() {
            #expect(EgressRoute.proxy == EgressRoute(name: "proxy", address: "127.0.0.1", listenPort: 3128, hostPort: 1026))
            #expect(EgressRoute.brain == EgressRoute(name: "brain", address: "127.0.0.2", listenPort: 80, hostPort: 1027))
        }

        @Test func processesGetTheProxyVariables() throws {
            var configuration = DoorsServerConfiguration()
            configuration.forcedEnvironment = EgressProtocol.proxyEnvironment
            let server = try DoorsServer(configuration: configuration)
            let client = try DoorsClient(server: server)
            let request = ExecRequest(
                argv: ["sh", "-c", "echo \"$HTTPS_PROXY|$http_proxy|$NO_PROXY|$KEPT\""],
                env: ["HTTPS_PROXY=http://elsewhere:8080", "KEPT=yes", "PATH=/usr/bin:/bin"])
            let outcome = try client.exec(request)
            #expect(outcome.stdoutText == "http://127.0.0.1:3128|http://127.0.0.1:3128|localhost,127.0.0.1,::1,brain.momin|yes\n")
            #expect(outcome.exit == ExitReport(status: .exited(code: 0)))
            // Replaced, not added: env(1) prints the environment as the child got it (a shell
            // would keep one of two entries of the same name).
            let listed = try client.exec(ExecRequest(argv: ["env"], env: request.env)).stdoutText.split(separator: "\n")
            #expect(listed.filter { $0.hasPrefix("HTTPS_PROXY=") } == ["HTTPS_PROXY=http://127.0.0.1:3128"])

            // Without it (the shared server), the caller's environment is what the child gets.
            let plain = try DoorsClient().exec(request)
            #expect(plain.stdoutText == "http://elsewhere:8080|||yes\n")
        }
    }
}

@Suite struct EgressSetupTests {
    @Test func theParameterIsAFlag() {
        #expect(EgressParameter.parse(commandLine: ["momin.doors", "quiet"]) == (false, nil))
        #expect(EgressParameter.parse(commandLine: ["momin.egressx"]) == (false, nil))
        #expect(EgressParameter.parse(commandLine: ["momin.egress"]) == (true, nil))
        #expect(EgressParameter.parse(commandLine: ["momin.egress="]) == (true, nil))
        #expect(EgressParameter.parse(commandLine: ["momin.egress=1"]) == (true, nil))
        #expect(EgressParameter.parse(commandLine: ["momin.egress", "momin.egress=0"]) == (false, nil))
        #expect(EgressParameter.parse(commandLine: ["momin.egress=3128"]) == (true, "momin.egress=3128: not 0 or 1, taken as momin.egress"))
    }

    @Test func theEnvironmentReplacesEntriesOfTheSameName() {
        let forced = [(name: "HTTP_PROXY", value: "http://p"), (name: "no_proxy", value: "localhost")]
        let requested = ["HTTP_PROXY=http://other", "HTTP_PROXY_X=1", "PATH=/bin", "no_proxy", "http_proxy=http://lower"]
        #expect(ProcessLauncher.environment(requested, forcing: forced)
            == ["HTTP_PROXY_X=1", "PATH=/bin", "http_proxy=http://lower", "HTTP_PROXY=http://p", "no_proxy=localhost"])
        #expect(ProcessLauncher.environment(requested, forcing: []) == requested)
    }

    @Test func theHostsFileKeepsAnImagesLines() {
        #expect(EgressHosts.merged(nil) == "127.0.0.1 localhost\n::1 localhost\n127.0.0.2 brain.momin\n")
        let debian = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\n"
        #expect(EgressHosts.merged(debian) == debian + "127.0.0.2 brain.momin\n")
        // No final newline; localhost only in a comment; the Brain already there.
        #expect(EgressHosts.merged("10.0.0.1 db # not localhost") == "10.0.0.1 db # not localhost\n127.0.0.1 localhost\n::1 localhost\n127.0.0.2 brain.momin\n")
        let complete = "127.0.0.1 localhost\n::1 localhost\n127.0.0.2 api BRAIN.momin\n"
        #expect(EgressHosts.merged(complete) == complete)
    }

    @Test func theHostsFileIsWrittenWhereItIsMissing() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.path + "/etc/hosts"
        try EgressHosts.install(path: path)
        #expect(readSmallFile(path) == EgressHosts.merged(nil))
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o644)

        // Again: nothing to change, the same file stays.
        let inode = info.st_ino
        try EgressHosts.install(path: path)
        #expect(stat(path, &info) == 0 && info.st_ino == inode)
        #expect(access(path + ".momin-new", F_OK) != 0)

        // An image's own file gets what it lacks.
        let fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        try FileIO.writeAll(fd, Array("127.0.0.1 localhost box\n::1 localhost\n".utf8))
        close(fd)
        try EgressHosts.install(path: path)
        #expect(readSmallFile(path) == "127.0.0.1 localhost box\n::1 localhost\n127.0.0.2 brain.momin\n")
    }

    @Test func bringingUpAnInterfaceThatIsUpChangesNothing() {
        // lo is up on the test machine: no SIOCSIFFLAGS, so no privilege needed.
        #expect(guest_interface_up("lo") == 0)
        #expect(guest_interface_up("momin-none0") == -1 && errno == ENODEV)
    }
}

// MARK: - Support

/// A value shared between threads.
final class Shared<Value>: @unchecked Sendable {
    private let lock = Lock()
    private var stored: Value

    init(_ value: Value) { stored = value }

    var value: Value { lock.withLock { stored } }

    func update(_ change: (inout Value) -> Void) {
        lock.withLock { change(&stored) }
    }
}

/// What a stream delivered up to its end: how much, its checksum, and whether it ended in a
/// reset (ECONNRESET) rather than an end of stream.
struct Received: Equatable, Sendable {
    var count: Int
    var checksum: UInt64
    var reset: Bool

    init(count: Int, checksum: UInt64, reset: Bool) {
        self.count = count
        self.checksum = checksum
        self.reset = reset
    }

    init(_ bytes: [UInt8], reset: Bool = false) {
        var sum = Checksum()
        sum.add(bytes)
        self.init(count: bytes.count, checksum: sum.final, reset: reset)
    }
}

/// Reads `fd` to its end or a reset; a wait of more than `timeoutMilliseconds` for the next
/// bytes ends it too (count -1, so that no expectation matches).
func receiveAll(_ fd: Int32, timeoutMilliseconds: Int32 = 10_000) -> Received {
    var sum = Checksum()
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, timeoutMilliseconds)
        if ready < 0 && errno == EINTR { continue }
        guard ready > 0 else { return Received(count: -1, checksum: 0, reset: false) }
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 && errno == ECONNRESET { return Received(count: sum.count, checksum: sum.final, reset: true) }
        if n <= 0 { return Received(count: n < 0 ? -1 : sum.count, checksum: sum.final, reset: false) }
        sum.add(Array(buffer[0..<n]))
    }
}

/// Writes `count` generated bytes, then half-closes.
func sendGenerated(_ fd: Int32, seed: UInt64, count: Int) {
    var generator = ByteGenerator(seed: seed)
    var left = count
    while left > 0 {
        let chunk = min(left, 256 << 10)
        guard (try? writeAll(fd: fd, generator.next(chunk))) != nil else { return }
        left -= chunk
    }
    _ = shutdown(fd, Int32(SHUT_WR))
}

func generatedChecksum(seed: UInt64, count: Int) -> UInt64 {
    var generator = ByteGenerator(seed: seed)
    var sum = Checksum()
    var left = count
    while left > 0 {
        let chunk = min(left, 256 << 10)
        sum.add(generator.next(chunk))
        left -= chunk
    }
    return sum.final
}

/// A client connected to a relay through a one-connection listener on 127.0.0.1 (a free port):
/// the relay serves the accepted socket for `route`.
func connectThrough(_ relay: EgressRelay, route: EgressRoute = .proxy) throws -> Int32 {
    let listener = try EgressRelay.listen(address: "127.0.0.1", port: 0)
    let port = guest_socket_port(listener)
    guard port > 0 else { throw ClientError.system("getsockname", errno) }
    background {
        let fd = guest_accept_cloexec(listener)
        close(listener)
        if fd >= 0 { relay.startConnection(fd, route: route) }
    }
    let client = guest_tcp4_connect("127.0.0.1", UInt16(port))
    guard client >= 0 else { throw ClientError.system("connect", errno) }
    return client
}

/// Closes a TCP socket with a reset (SO_LINGER of 0).
func resetAndClose(_ fd: Int32) {
    var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
    _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
    close(fd)
}
