import Doors
import GuestClient
@testable import GuestClientTestSupport
import POSIX
import Testing

/// Output chunks as the client's callback saw them: true for stdout, false for stderr.
struct Chunk: Equatable, Sendable, CustomTestStringConvertible {
    var stdout: Bool
    var bytes: [UInt8]

    /// Short, so a failure does not print a 200 KB chunk.
    var testDescription: String {
        let head = bytes.prefix(8).map { String($0, radix: 16) }.joined(separator: " ")
        return "\(stdout ? "stdout" : "stderr") \(bytes.count) bytes [\(head)\(bytes.count > 8 ? " …" : "")]"
    }
}

/// The exec side of the client, against a fake guest.
@Suite struct ExecTests {
    /// A silent program is cancelled once `shouldKill` says so, when the client is told to ask
    /// while it waits (a background command's kill): without that it would wait for output.
    @Test func aSilentProgramIsCancelledWhenAskedWhileWaiting() throws {
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            guard case .exec = request.message else { throw FakeError("expected Exec, got \(request)") }
            try peer.send(Frame(requestID: request.requestID, .started(pid: 42)))
            // The program says nothing; a Cancel, if it comes, is answered as SIGKILL's end.
            let cancelled = (try? peer.receive()).map { if case .cancel = $0.message { true } else { false } } ?? false
            try peer.send(Frame(requestID: request.requestID, .exit(ExitReport(status: cancelled ? .signaled(signal: 9) : .exited(code: 0)))))
            return cancelled
        }
        let asked = MonotonicClock.deadline(after: 0.3)
        let report = try client.exec(ExecRequest(argv: ["sleep", "600"]), input: .none, shouldKill: { MonotonicClock.nanoseconds() >= asked },
                                     killPollMilliseconds: 50) { _, _ in }
        #expect(report.status == .signaled(signal: 9))
        #expect(try guest.join())
    }

    @Test func outputArrivesInOrderPerStreamAndTheExitStatusIsReported() throws {
        let big = pattern(200_000, seed: 7)  // more than one socket read
        let sent = [
            Chunk(stdout: true, bytes: Array("hello ".utf8)),
            Chunk(stdout: false, bytes: Array("warning 1\n".utf8)),
            Chunk(stdout: true, bytes: big),
            Chunk(stdout: false, bytes: Array("warning 2\n".utf8)),
            Chunk(stdout: true, bytes: Array("world\n".utf8)),
        ]
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            guard case .exec = request.message else { throw FakeError("expected Exec, got \(request)") }
            let id = request.requestID
            var frames = [Frame(requestID: id, .started(pid: 42))]
            for chunk in sent {
                frames.append(Frame(requestID: id, chunk.stdout ? .stdoutData(chunk.bytes) : .stderrData(chunk.bytes)))
            }
            frames.append(Frame(requestID: id, .exit(ExitReport(status: .exited(code: 7)))))
            try peer.send(frames[0])
            try peer.write(peer.bytes(Array(frames[1...])))  // all in one write
            return request
        }
        var received: [Chunk] = []
        let request = ExecRequest(argv: ["/bin/sh", "-c", "exit 7"], env: ["PATH=/bin"], cwd: "/tmp", sendsStdin: true, timeoutMilliseconds: 5000)
        let report = try client.exec(request) { received.append(Chunk(stdout: $0, bytes: $1)) }
        let seen = try guest.join()

        #expect(report == ExitReport(status: .exited(code: 7)))
        expectSameBytes(received.filter(\.stdout).flatMap(\.bytes), sent.filter(\.stdout).flatMap(\.bytes), "stdout")
        expectSameBytes(received.filter { !$0.stdout }.flatMap(\.bytes), sent.filter { !$0.stdout }.flatMap(\.bytes), "stderr")
        #expect(received == sent)
        // Without stdin bytes the request says so, whatever the caller set.
        var expected = request
        expected.sendsStdin = false
        #expect(seen.message == .exec(expected))
        #expect(seen.requestID != 0 && seen.requestID < 0x8000_0000)
    }

    @Test func aSignalIsReported() throws {
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            try peer.send(
                Frame(requestID: request.requestID, .started(pid: 9)),
                Frame(requestID: request.requestID, .exit(ExitReport(status: .signaled(signal: 9), timedOut: true))))
        }
        let report = try client.exec(ExecRequest(argv: ["sleep", "100"], timeoutMilliseconds: 10)) { _, _ in }
        try guest.join()
        #expect(report == ExitReport(status: .signaled(signal: 9), timedOut: true))
    }

    /// Stdin bigger than one payload goes out in frames no bigger than the session allows, then StdinEnd.
    @Test(arguments: [65_536, DoorsProtocol.maxPayload])
    func stdinIsStreamedInFramesThenEnded(guestLimit: Int) throws {
        let stdin = pattern(2 * guestLimit + 1234, seed: 3)
        let (client, guest) = try connect(hello: Hello(maxPayload: UInt32(guestLimit))) { peer in
            let request = try peer.receive()
            guard case .exec(let exec) = request.message, exec.sendsStdin else {
                throw FakeError("expected Exec with sendsStdin, got \(request)")
            }
            var chunks: [[UInt8]] = []
            while true {
                let frame = try peer.receive()
                guard frame.requestID == request.requestID else { throw FakeError("stdin on request \(frame.requestID)") }
                if case .stdinData(let bytes) = frame.message {
                    chunks.append(bytes)
                } else if case .stdinEnd = frame.message {
                    break
                } else {
                    throw FakeError("expected stdin, got \(frame)")
                }
            }
            try peer.send(
                Frame(requestID: request.requestID, .started(pid: 2)),
                Frame(requestID: request.requestID, .stdoutData(Array("\(concatenated(chunks).count)".utf8))),
                Frame(requestID: request.requestID, .exit(ExitReport(status: .exited(code: 0)))))
            return chunks
        }
        var stdout: [UInt8] = []
        let report = try client.exec(ExecRequest(argv: ["wc", "-c"]), stdin: stdin) { if $0 { stdout += $1 } }
        let chunks = try guest.join()
        #expect(report == ExitReport(status: .exited(code: 0)))
        expectSameBytes(concatenated(chunks), stdin, "stdin the guest got")
        #expect(chunks.count == 3)
        #expect(chunks.allSatisfy { $0.count <= guestLimit })
        #expect(String(decoding: stdout, as: UTF8.self) == "\(stdin.count)")
    }

    @Test func emptyStdinIsJustTheEnd() throws {
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            let end = try peer.receive()
            try peer.send(Frame(requestID: request.requestID, .exit(ExitReport(status: .exited(code: 0)))))
            return [request, end]
        }
        _ = try client.exec(ExecRequest(argv: ["cat"]), stdin: []) { _, _ in }
        let frames = try guest.join()
        #expect(frames[0].message == .exec(ExecRequest(argv: ["cat"], sendsStdin: true)))
        #expect(frames[1] == Frame(requestID: frames[0].requestID, .stdinEnd))
    }

    @Test func anErrorReplyIsRemote() throws {
        let reply = ErrorReply(linuxErrno: 2, message: "nosuchprogram: not found")
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            try peer.send(Frame(requestID: request.requestID, .error(reply)))
        }
        var outputCalls = 0
        let error = handsError { _ = try client.exec(ExecRequest(argv: ["nosuchprogram"])) { _, _ in outputCalls += 1 } }
        try guest.join()
        let remote = try #require(error?.remoteReply, "got \(String(describing: error))")
        #expect(remote.code == .notFound)
        #expect(remote == reply)
        #expect(outputCalls == 0)
    }

    @Test func framesForOtherRequestsAreIgnored() throws {
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            let id = request.requestID
            try peer.send(
                Frame(requestID: id, .started(pid: 5)),
                Frame(requestID: id + 1, .stdoutData(Array("not mine".utf8))),
                Frame(requestID: id + 100, .stderrData(Array("nor this".utf8))),
                Frame(requestID: 0x8000_0001, .ping(nonce: 1)),
                Frame(requestID: id + 1, .error(ErrorReply(code: .internal))),
                Frame(requestID: id + 1, .exit(ExitReport(status: .exited(code: 99)))),
                Frame(requestID: id, .stdoutData(Array("mine".utf8))),
                Frame(requestID: id, .exit(ExitReport(status: .exited(code: 0)))))
        }
        var received: [Chunk] = []
        let report = try client.exec(ExecRequest(argv: ["true"])) { received.append(Chunk(stdout: $0, bytes: $1)) }
        try guest.join()
        #expect(report == ExitReport(status: .exited(code: 0)))
        #expect(received == [Chunk(stdout: true, bytes: Array("mine".utf8))])
    }

    @Test func theConnectionClosingMidExecIsReported() throws {
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            try peer.send(
                Frame(requestID: request.requestID, .started(pid: 5)),
                Frame(requestID: request.requestID, .stdoutData(Array("partial".utf8))))
            // the script ends: the connection closes
        }
        var received: [Chunk] = []
        let error = handsError { _ = try client.exec(ExecRequest(argv: ["yes"])) { received.append(Chunk(stdout: $0, bytes: $1)) } }
        try guest.join()
        #expect(error?.isConnectionClosed == true, "got \(String(describing: error))")
        #expect(received == [Chunk(stdout: true, bytes: Array("partial".utf8))])
    }

    /// After a Hello that offers 64 KiB, a bigger frame breaks the session: the client refuses it
    /// from its header.
    @Test func aFrameOverTheNegotiatedLimitIsAProtocolError() throws {
        let (client, guest) = try connect(hello: Hello(maxPayload: 65_536)) { peer in
            let request = try peer.receive()
            let unbounded = FrameEncoder()  // ignores the session's limit
            try peer.write(unbounded.encode(Frame(requestID: request.requestID, .stdoutData(pattern(65_537)))))
        }
        #expect(client.session.maxPayload == 65_536)
        var outputCalls = 0
        let error = handsError { _ = try client.exec(ExecRequest(argv: ["true"])) { _, _ in outputCalls += 1 } }
        try guest.join()
        #expect(error?.doorsError == .payloadTooLarge(length: 65_537, limit: 65_536), "got \(String(describing: error))")
        #expect(outputCalls == 0)
    }

    @Test func aFrameTheClientDoesNotExpectIsUnexpected() throws {
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            try peer.send(Frame(requestID: request.requestID, .fileEnd))
        }
        let error = handsError { _ = try client.exec(ExecRequest(argv: ["true"])) { _, _ in } }
        try guest.join()
        #expect(error?.unexpectedMessage == .fileEnd, "got \(String(describing: error))")
    }

    /// An Error on request id 0 is about the whole connection, and the guest closes right after
    /// it (docs/doors-protocol.md, "Error codes"); its reason must reach the user.
    @Test func aConnectionErrorDuringARequestIsRemote() throws {
        let reply = ErrorReply(code: .busy, message: "request id 1 reused while in flight")
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            try peer.send(
                Frame(requestID: request.requestID, .started(pid: 5)),
                Frame(requestID: 0, .error(reply)))
        }
        let error = handsError { _ = try client.exec(ExecRequest(argv: ["true"])) { _, _ in } }
        try guest.join()
        #expect(error?.remoteReply == reply, "got \(String(describing: error))")
    }

    /// One connection, several requests: fresh ids from the host's range, and an Error ends only its request.
    @Test func requestsGetFreshIdsAndAnErrorLeavesTheConnectionUsable() throws {
        let (client, guest) = try connect { peer in
            var ids: [UInt32] = []
            let exec = try peer.receive()
            ids.append(exec.requestID)
            try peer.send(Frame(requestID: exec.requestID, .error(ErrorReply(code: .permissionDenied))))
            let ping = try peer.receive()
            ids.append(ping.requestID)
            guard case .ping(let nonce) = ping.message else { throw FakeError("expected Ping, got \(ping)") }
            try peer.send(Frame(requestID: ping.requestID, .pong(nonce: nonce)))
            let again = try peer.receive()
            ids.append(again.requestID)
            try peer.send(Frame(requestID: again.requestID, .exit(ExitReport(status: .exited(code: 3)))))
            return ids
        }
        let first = handsError { _ = try client.exec(ExecRequest(argv: ["/root/x"])) { _, _ in } }
        #expect(first?.remoteReply?.code == .permissionDenied)
        try client.ping()
        let report = try client.exec(ExecRequest(argv: ["false"])) { _, _ in }
        let ids = try guest.join()
        #expect(report == ExitReport(status: .exited(code: 3)))
        #expect(Set(ids).count == 3)
        #expect(ids.allSatisfy { $0 != 0 && $0 < 0x8000_0000 })
    }

    /// A guest that never ends an exec: the host cancels it at its deadline, then stops
    /// waiting and shuts the connection, whatever the guest does.
    @Test func aGuestThatNeverSendsExitIsCancelledAndThenGivenUpOn() throws {
        let (client, guest) = try connect { peer -> ([DoorsMessage], String) in
            let request = try peer.receive()
            try peer.send(Frame(requestID: request.requestID, .started(pid: 5)), Frame(requestID: request.requestID, .stdoutData([1])))
            var seen: [DoorsMessage] = []
            // Reads what the host sends (its Cancel) and answers nothing, until it hangs up.
            do { while true { seen.append(try peer.receive().message) } } catch { return (seen, "\(error)") }
        }
        let now = MonotonicClock.nanoseconds()
        let deadline = DoorsClient.ExecDeadline(cancel: now + 200_000_000, abandon: now + 500_000_000)
        var output: [UInt8] = []
        let error = handsError {
            _ = try client.exec(ExecRequest(argv: ["sleep", "1000"]), input: .none, deadline: deadline) { output += $1 }
        }
        #expect(error?.timedOutWaitingFor?.contains("Exit") == true, "\(String(describing: error))")
        #expect(MonotonicClock.nanoseconds() >= deadline.abandon)
        #expect(output == [1])
        let (seen, end) = try guest.join()
        #expect(seen == [.cancel])
        // The host shut the connection (end of file, read 0) while the client still exists.
        #expect(end.contains("read 0"), "\(end)")
        // The connection is no longer used.
        #expect(handsError { try client.ping() }?.isConnectionClosed == true)
    }

    /// A guest that ends the exec once the host cancels it at the deadline: reported as timed out.
    @Test func anExecCancelledAtItsDeadlineIsReportedTimedOut() throws {
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            try peer.send(Frame(requestID: request.requestID, .started(pid: 5)))
            let cancel = try peer.receive()
            guard cancel.message == .cancel else { throw FakeError("expected Cancel, got \(cancel)") }
            try peer.send(Frame(requestID: request.requestID, .exit(ExitReport(status: .signaled(signal: 9)))))
        }
        let now = MonotonicClock.nanoseconds()
        let report = try client.exec(ExecRequest(argv: ["sleep", "1000"]), input: .none,
                                     deadline: DoorsClient.ExecDeadline(cancel: now + 100_000_000, abandon: now + 5_000_000_000)) { _, _ in }
        try guest.join()
        #expect(report == ExitReport(status: .signaled(signal: 9), timedOut: true))
    }
}
