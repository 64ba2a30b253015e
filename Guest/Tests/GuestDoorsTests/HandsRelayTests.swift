import CGuestSys
import Doors
import Glibc
@testable import GuestDoors
import HandsClient
import POSIX
import Testing

/// The hands relay over socketpairs: the test holds the caller's end and the host's end. These
/// run in the serialized ServerTests, as the descriptor counts there see the whole process.
extension ServerTests {
    @Suite struct HandsRelayTests {
        @Test func passesExactlyTheFrameAndTheReply() throws {
            let host = try FakeHost()
            let relay = HandsRelay(connectToHost: host.connect)
            let (caller, relaySide) = try streamPair()
            defer { close(caller) }
            relay.startCall(relaySide)

            var generator = ByteGenerator(seed: 6)
            let call = HandsCall.bucketPut(namespace: "notes", key: "k1", value: generator.next(300_000))
            let frame = HandsCallCodec.encode(call)
            try writeAll(fd: caller, frame)
            let received = try readExactly(host.end, count: frame.count)
            #expect(received == frame)
            // Nothing follows the frame.
            var extra: UInt8 = 0
            #expect(recv(host.end, &extra, 1, Int32(MSG_DONTWAIT)) == -1 && errno == EAGAIN)

            let reply = HandsReply.ok(fields: ["first", "second"], data: generator.next(200_000))
            try writeAll(fd: host.end, HandsCallCodec.encode(reply))
            #expect(try readUntilEnd(caller) == HandsCallCodec.encode(reply))
            // The relay closed the host's connection after the one reply.
            #expect(try readUntilEnd(host.end).isEmpty)
            #expect(host.connections == 1)
            #expect(eventually { relay.activeCalls == 0 })
        }

        @Test func malformedCallsAreAnsweredHereAndNeverReachTheHost() throws {
            let host = try FakeHost()
            let relay = HandsRelay(connectToHost: host.connect)
            // An empty namespace, a reply sent as a call, and an unknown kind.
            var unknownKind = HandsCallCodec.encode(HandsCall.whoami)
            unknownKind[3] = 0x7f
            let cases: [([UInt8], String)] = [
                (HandsCallCodec.encode(HandsCall.bucketGet(namespace: "", key: "k")), "bucketGet call: field 1 is empty"),
                (HandsCallCodec.encode(HandsReply.ok(fields: [], data: [])), "ok call: a reply is not a call"),
                (unknownKind, "unknown hands call kind 0x7f"),
            ]
            for (frame, message) in cases {
                let reply = try relayOnce(relay, frame)
                #expect(reply == .failed(.invalid, message))
            }
            #expect(host.connections == 0)
            #expect(eventually { relay.activeCalls == 0 })
        }

        @Test func badHeadersAreRefusedWithoutReadingAPayload() throws {
            let host = try FakeHost()
            let relay = HandsRelay(connectToHost: host.connect)
            // A header announcing one byte over the limit, and one with a bad magic: answered
            // at once, although no payload follows.
            var oversized = [UInt8](HandsCallCodec.encode(HandsCall.whoami).prefix(HandsCallProtocol.headerSize))
            oversized.replaceSubrange(4..<8, with: littleEndian(UInt32(HandsCallProtocol.maxPayload + 1)))
            let tooLarge = try relayOnce(relay, oversized, halfClose: false)
            #expect(tooLarge == .failed(.invalid, "a \(HandsCallProtocol.maxPayload + 1)-byte payload is over the \(HandsCallProtocol.maxPayload)-byte limit"))

            let badMagic = try relayOnce(relay, [0x47, 0x45, 0x54, 0x20, 0, 0, 0, 0], halfClose: false)
            #expect(badMagic == .failed(.invalid, "bad magic 0x4547, expected 0x484d"))

            let short = try relayOnce(relay, [0x4d, 0x48, 1])
            #expect(short == .failed(.invalid, "the call ends after 3 of its 8 header bytes"))
            #expect(host.connections == 0)
            #expect(eventually { relay.activeCalls == 0 })
        }

        @Test func aHostThatCannotBeReachedIsAFailure() throws {
            let relay = HandsRelay {
                errno = ECONNRESET
                return -1
            }
            let reply = try relayOnce(relay, HandsCallCodec.encode(HandsCall.whoami))
            #expect(reply == .failed(.failed, "the host serves no hands calls for this VM (Connection reset by peer)"))
            #expect(eventually { relay.activeCalls == 0 })
        }

        @Test func aHostThatBreaksTheExchangeIsAFailure() throws {
            // The host closes without a reply.
            let silent = try FakeHost()
            let relay = HandsRelay(connectToHost: silent.connect)
            let (caller, relaySide) = try streamPair()
            defer { close(caller) }
            relay.startCall(relaySide)
            try writeAll(fd: caller, HandsCallCodec.encode(HandsCall.stop(agent: "child")))
            _ = try readExactly(silent.end, count: HandsCallCodec.encode(HandsCall.stop(agent: "child")).count)
            silent.hangUp()
            #expect(try decodeReply(readUntilEnd(caller)) == .failed(.failed, "momin-init: the host closed the hands connection without a reply"))

            // The host answers with a call, not a reply.
            let confused = try FakeHost()
            let second = HandsRelay(connectToHost: confused.connect)
            let (caller2, relaySide2) = try streamPair()
            defer { close(caller2) }
            second.startCall(relaySide2)
            try writeAll(fd: caller2, HandsCallCodec.encode(HandsCall.whoami))
            _ = try readExactly(confused.end, count: HandsCallCodec.encode(HandsCall.whoami).count)
            try writeAll(fd: confused.end, HandsCallCodec.encode(HandsCall.whoami))
            #expect(try decodeReply(readUntilEnd(caller2)) == .failed(.failed, "momin-init: the host answered with a whoami frame, not a reply"))
            #expect(eventually { relay.activeCalls == 0 && second.activeCalls == 0 })
            #expect(silent.connections == 1 && confused.connections == 1)
        }

        @Test func aCallerThatHangsUpClosesTheHostSide() throws {
            let host = try FakeHost()
            let relay = HandsRelay(connectToHost: host.connect)
            let (caller, relaySide) = try streamPair()
            relay.startCall(relaySide)
            let frame = HandsCallCodec.encode(HandsCall.doorReceive(door: "inbox", timeoutMilliseconds: 0))
            try writeAll(fd: caller, frame)
            #expect(try readExactly(host.end, count: frame.count) == frame)
            // The host blocks (a long door receive); the caller goes away.
            close(caller)
            #expect(try readUntilEnd(host.end).isEmpty)
            #expect(eventually { relay.activeCalls == 0 })
            #expect(host.connections == 1)
        }

        @Test func aHalfCloseIsNotAHangUp() throws {
            let host = try FakeHost()
            let relay = HandsRelay(connectToHost: host.connect)
            let (caller, relaySide) = try streamPair()
            defer { close(caller) }
            relay.startCall(relaySide)
            let frame = HandsCallCodec.encode(HandsCall.wait(agent: "child", timeoutMilliseconds: 0))
            try writeAll(fd: caller, frame)
            #expect(shutdown(caller, Int32(SHUT_WR)) == 0)
            #expect(try readExactly(host.end, count: frame.count) == frame)
            usleep(100_000)
            let reply = HandsReply.ok(fields: ["exited", "0"], data: Array("done\n".utf8))
            try writeAll(fd: host.end, HandsCallCodec.encode(reply))
            #expect(try decodeReply(readUntilEnd(caller)) == reply)
            #expect(eventually { relay.activeCalls == 0 })
            #expect(host.connections == 1)
        }

        @Test func callsOverTheLimitAreRefused() throws {
            var configuration = HandsRelayConfiguration()
            configuration.maxCalls = 1
            let host = try FakeHost()
            let relay = HandsRelay(configuration: configuration, connectToHost: host.connect)
            let (first, firstRelaySide) = try streamPair()
            relay.startCall(firstRelaySide)
            let frame = HandsCallCodec.encode(HandsCall.whoami)
            try writeAll(fd: first, frame)
            _ = try readExactly(host.end, count: frame.count)
            #expect(relay.activeCalls == 1)

            let reply = try relayOnce(relay, frame)
            #expect(reply == .failed(.failed, "momin-init: too many hands calls at once"))
            #expect(host.connections == 1)
            close(first)
            #expect(eventually { relay.activeCalls == 0 })
        }

        @Test func listensAtAPathWithTheDirectoriesAndModeItNeeds() throws {
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let path = scratch.path + "/run/momin/hands.sock"
            let first = try HandsRelay.listen(path: path)
            var info = stat()
            #expect(lstat(path, &info) == 0)
            #expect(info.st_mode & S_IFMT == S_IFSOCK)
            #expect(info.st_mode & 0o777 == 0o666)
            #expect(stat(scratch.path + "/run/momin", &info) == 0 && info.st_mode & 0o777 == 0o755)
            close(first)

            // A socket left from before is replaced; anything else at the path is not.
            let second = try HandsRelay.listen(path: path)
            close(second)
            let file = scratch.path + "/run/momin/file"
            let fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
            close(fd)
            #expect(throws: SetupError.self) { _ = try HandsRelay.listen(path: file) }
            #expect(access(file, F_OK) == 0)
        }

        @Test func theHandsClientEndToEnd() throws {
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let path = scratch.path + "/hands.sock"
            #expect(throws: HandsClientError.unreachable("cannot reach momin-init at \(path): No such file or directory")) {
                _ = try HandsConnection.call(.whoami, socketPath: path)
            }

            // One call through a listening relay to a host that checks the call it gets.
            let host = try FakeHost()
            let relay = HandsRelay(connectToHost: host.connect)
            let listener = try HandsRelay.listen(path: path)
            background {
                let fd = guest_accept_cloexec(listener)
                close(listener)
                if fd >= 0 { relay.serveCall(fd) }
            }
            let request = SpawnRequest(name: "child", policy: Array("allow: []\n".utf8), policyFormat: "yaml",
                                       vcpus: 1, memoryMiB: 256, argv: ["sh", "-c", "true"], env: ["A=1"])
            let expected = HandsCallCodec.encode(HandsCall.spawn(request))
            let hostEnd = host.end
            background {
                guard let frame = try? readExactly(hostEnd, count: expected.count), frame == expected else { return }
                _ = try? writeAll(fd: hostEnd, HandsCallCodec.encode(HandsReply.ok(fields: ["parent.child"], data: [])))
            }
            let reply = try HandsConnection.call(.spawn(request), socketPath: path)
            #expect(reply == .ok(fields: ["parent.child"], data: []))
            #expect(HandsOutcome.of(reply, output: .firstField) == HandsOutcome(standardOutput: Array("parent.child\n".utf8)))
            #expect(eventually { relay.activeCalls == 0 })
            #expect(host.connections == 1)
        }

        @Test func theClientReadsARefusalEvenWhenItsCallWasCutShort() throws {
            var configuration = HandsRelayConfiguration()
            configuration.maxCalls = 0
            let relay = HandsRelay(configuration: configuration) {
                errno = ECONNREFUSED
                return -1
            }
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let path = scratch.path + "/hands.sock"
            let listener = try HandsRelay.listen(path: path)
            background {
                let fd = guest_accept_cloexec(listener)
                close(listener)
                if fd >= 0 { relay.startCall(fd) }
            }
            // A megabyte does not fit the socket's buffers: the relay closes before taking it.
            let call = HandsCall.bucketPut(namespace: "n", key: "k", value: [UInt8](repeating: 7, count: HandsCallProtocol.maxData))
            let reply = try HandsConnection.call(call, socketPath: path)
            #expect(reply == .failed(.failed, "momin-init: too many hands calls at once"))
        }

        @Test func theClientAndTheRelayAgreeOnThePath() {
            #expect(HandsConnection.defaultSocketPath == HandsRelay.socketPath)
        }
    }
}

@Suite struct HandsParameterTests {
    @Test func absentBareNumberedAndBad() {
        #expect(HandsParameter.port(commandLine: ["momin.doors", "quiet"]) == nil)
        #expect(HandsParameter.port(commandLine: ["momin.handsx=5"]) == nil)
        #expect(HandsParameter.port(commandLine: ["momin.hands"])?.port == 1025)
        #expect(HandsParameter.port(commandLine: ["momin.hands="])?.port == 1025)
        let numbered = HandsParameter.port(commandLine: ["momin.hands=7000", "momin.doors=1024"])
        #expect(numbered?.port == 7000 && numbered?.problem == nil)
        #expect(HandsParameter.port(commandLine: ["momin.hands=7000", "momin.hands=8000"])?.port == 8000)
        let bad = HandsParameter.port(commandLine: ["momin.hands=4294967295"])
        #expect(bad?.port == 1025 && bad?.problem == "momin.hands=4294967295: not a vsock port, using 1025")
    }
}

// MARK: - Support

/// The host's side of a relay: each connect hands the relay one end of a new socketpair; the
/// test reads and writes the other (`end`, of the latest connection).
final class FakeHost: @unchecked Sendable {
    private let lock = Lock()
    private var ends: [Int32] = []
    private var count = 0
    private let prepared: (relay: Int32, test: Int32)

    /// One connection is made ready now, so the test can hold its end before the relay connects.
    init() throws {
        prepared = try streamPair()
    }

    deinit {
        close(prepared.test)
        lock.withLock {
            if count == 0 { close(prepared.relay) }
        }
    }

    var connections: Int { lock.withLock { count } }
    var end: Int32 { prepared.test }

    /// What the relay calls: the prepared end, once.
    var connect: @Sendable () -> Int32 {
        { [self] in
            lock.withLock {
                count += 1
                guard count == 1 else {
                    errno = ECONNREFUSED
                    return -1
                }
                return prepared.relay
            }
        }
    }

    /// Closes the host's end, as a host that goes away.
    func hangUp() {
        _ = shutdown(prepared.test, Int32(SHUT_RDWR))
    }
}

/// A connected pair of stream sockets, close-on-exec.
func streamPair() throws -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    guard socketpair(AF_UNIX, type, 0, &fds) == 0 else { throw ClientError.system("socketpair", errno) }
    return (fds[0], fds[1])
}

/// Sends `frame` as a caller over a new socketpair (then half-closes, unless told not to) and
/// decodes the relay's reply.
func relayOnce(_ relay: HandsRelay, _ frame: [UInt8], halfClose: Bool = true) throws -> HandsReply {
    let (caller, relaySide) = try streamPair()
    defer { close(caller) }
    relay.startCall(relaySide)
    // A refusal closes the relay's end at once: the write may fail, the reply is there to read.
    do {
        try writeAll(fd: caller, frame)
    } catch ClientError.closed {}
    if halfClose { _ = shutdown(caller, Int32(SHUT_WR)) }
    return try decodeReply(readUntilEnd(caller))
}

func decodeReply(_ bytes: [UInt8]) throws -> HandsReply {
    let (kind, length) = try HandsCallCodec.payloadLength(header: Array(bytes.prefix(HandsCallProtocol.headerSize)))
    guard bytes.count == HandsCallProtocol.headerSize + length else {
        throw ClientError.unexpected("a \(bytes.count)-byte reply announcing \(length) payload bytes")
    }
    return try HandsCallCodec.decodeReply(kind: kind, payload: Array(bytes.dropFirst(HandsCallProtocol.headerSize)))
}

/// Exactly `count` bytes, waiting at most `timeoutMilliseconds` for each read.
func readExactly(_ fd: Int32, count: Int, timeoutMilliseconds: Int32 = 10_000) throws -> [UInt8] {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    while bytes.count < count {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, timeoutMilliseconds)
        if ready < 0 && errno == EINTR { continue }
        guard ready > 0 else { throw ClientError.timedOut("\(count - bytes.count) more bytes") }
        let wanted = min(buffer.count, count - bytes.count)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, wanted, 0) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw ClientError.system("recv", errno) }
        guard n > 0 else { throw ClientError.closed }
        bytes += buffer[0..<n]
    }
    return bytes
}

/// Everything until end of stream (a reset counts as the end).
func readUntilEnd(_ fd: Int32, timeoutMilliseconds: Int32 = 10_000) throws -> [UInt8] {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, timeoutMilliseconds)
        if ready < 0 && errno == EINTR { continue }
        guard ready > 0 else { throw ClientError.timedOut("the end of the stream") }
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 && errno == ECONNRESET { return bytes }
        guard n >= 0 else { throw ClientError.system("recv", errno) }
        if n == 0 { return bytes }
        bytes += buffer[0..<n]
    }
}
