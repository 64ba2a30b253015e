import Doors
import Foundation
import GuestClient
@testable import GuestClientTestSupport
import Testing

/// What the fake guest saw of a WriteFile request.
struct WriteSeen: Sendable {
    var request: Frame
    var chunks: [[UInt8]]
    var ends: Int
}

/// Collects a WriteFile's FileData up to its FileEnd, checking every frame belongs to it.
func receiveWrite(_ peer: Peer) throws -> WriteSeen {
    let request = try peer.receive()
    guard case .writeFile = request.message else { throw FakeError("expected WriteFile, got \(request)") }
    var seen = WriteSeen(request: request, chunks: [], ends: 0)
    while seen.ends == 0 {
        let frame = try peer.receive()
        guard frame.requestID == request.requestID else { throw FakeError("file data on request \(frame.requestID)") }
        switch frame.message {
        case .fileData(let bytes): seen.chunks.append(bytes)
        case .fileEnd: seen.ends += 1
        default: throw FakeError("expected file data, got \(frame)")
        }
    }
    return seen
}

/// writeFile, readFile, stat and ping against a fake guest.
@Suite struct FileTests {
    @Test(arguments: [1 << 20, (1 << 20) + 123, 0])
    func writeFileStreamsTheSourceInFrames(size: Int) throws {
        let data = pattern(size, seed: UInt64(size))
        let source = try TempFile(data)
        let (client, guest) = try connect { peer in
            let seen = try receiveWrite(peer)
            try peer.send(Frame(requestID: seen.request.requestID, .ok(count: UInt64(concatenated(seen.chunks).count))))
            return seen
        }
        let request = WriteFileRequest(path: "/work/input.bin", permissions: 0o600, options: [.create, .exclusive])
        let written = try client.writeFile(request, from: source.fd)
        let seen = try guest.join()
        #expect(written == UInt64(size))
        #expect(seen.request.message == .writeFile(request))
        expectSameBytes(concatenated(seen.chunks), data, "file data the guest got")
        #expect(seen.chunks.allSatisfy { $0.count <= DoorsProtocol.maxPayload && !$0.isEmpty })
        #expect(seen.chunks.count == (size + DoorsProtocol.maxPayload - 1) / DoorsProtocol.maxPayload)
        #expect(seen.ends == 1)
    }

    /// The guest fails the write at once (the open failed) and drops the data that follows.
    @Test func writeFileErrorIsRemote() throws {
        let source = try TempFile(pattern(1 << 20))
        let reply = ErrorReply(linuxErrno: 13, message: "/etc/shadow: permission denied")
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            try peer.send(Frame(requestID: request.requestID, .error(reply)))
            var dropped = 0
            while true {
                let frame = try peer.receive()
                if case .fileData(let bytes) = frame.message { dropped += bytes.count; continue }
                guard case .fileEnd = frame.message else { throw FakeError("expected file data, got \(frame)") }
                return dropped
            }
        }
        let error = handsError { _ = try client.writeFile(WriteFileRequest(path: "/etc/shadow"), from: source.fd) }
        let dropped = try guest.join()
        let remote = try #require(error?.remoteReply, "got \(String(describing: error))")
        #expect(remote == reply)
        #expect(remote.code == .permissionDenied)
        #expect(dropped == 1 << 20)
    }

    @Test func writeFileAnsweredWithoutOkIsUnexpected() throws {
        let source = try TempFile(Array("abc".utf8))
        let (client, guest) = try connect { peer in
            let seen = try receiveWrite(peer)
            try peer.send(Frame(requestID: seen.request.requestID, .fileEnd))
        }
        let error = handsError { _ = try client.writeFile(WriteFileRequest(path: "/x"), from: source.fd) }
        try guest.join()
        #expect(error?.unexpectedMessage == .fileEnd, "got \(String(describing: error))")
    }

    @Test func readFileWritesExactlyTheStreamedBytes() throws {
        let sizes = [DoorsProtocol.maxPayload, 1, 0, 100_000, 7]
        let chunks = sizes.enumerated().map { pattern($0.element, seed: UInt64($0.offset + 10)) }
        let destination = try TempFile()
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            var frames = chunks.map { Frame(requestID: request.requestID, .fileData($0)) }
            frames.append(Frame(requestID: request.requestID, .fileEnd))
            try peer.write(peer.bytes(frames))
            return request
        }
        let request = ReadFileRequest(path: "/var/log/boot.log", offset: 5, length: 1_000_000)
        let copied = try client.readFile(request, to: destination.fd)
        let seen = try guest.join()
        #expect(seen.message == .readFile(request))
        #expect(copied == UInt64(sizes.reduce(0, +)))
        expectSameBytes(try destination.contents(), concatenated(chunks), "destination file")
    }

    @Test func readFileErrorIsRemote() throws {
        let destination = try TempFile()
        let reply = ErrorReply(linuxErrno: 21, message: "/etc: is a directory")
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            try peer.send(Frame(requestID: request.requestID, .error(reply)))
        }
        let error = handsError { _ = try client.readFile(ReadFileRequest(path: "/etc"), to: destination.fd) }
        try guest.join()
        #expect(error?.remoteReply == reply, "got \(String(describing: error))")
        #expect(try destination.contents().isEmpty)
    }

    @Test func statRoundTrip() throws {
        let result = FileStat(
            type: .symlink, permissions: 0o777, size: 12, mtimeSeconds: -5, mtimeNanoseconds: 999_999_999,
            nlink: 3, uid: 1000, gid: 100)
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            try peer.send(Frame(requestID: request.requestID, .statResult(result)))
            return request
        }
        let stat = try client.stat("/bin/sh")
        let seen = try guest.join()
        #expect(seen.message == .stat(StatRequest(path: "/bin/sh", followSymlinks: false)))
        #expect(stat == result)
    }

    @Test func statErrorIsRemote() throws {
        let reply = ErrorReply(linuxErrno: 2, message: "/nope: no such file")
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            try peer.send(Frame(requestID: request.requestID, .error(reply)))
        }
        let error = handsError { _ = try client.stat("/nope") }
        try guest.join()
        #expect(error?.remoteReply == reply, "got \(String(describing: error))")
    }

    /// ping() returns once the Pong is in, not before: the fake holds it back a little.
    @Test func resolveReturnsTheGuestsAnswerAndItsErrors() throws {
        let (client, guest) = try connect { peer in
            let first = try peer.receive()
            guard case .resolve(let path) = first.message else { throw FakeError("expected Resolve, got \(first)") }
            try peer.send(Frame(requestID: first.requestID, .resolved(path: "/real" + path)))
            let second = try peer.receive()
            try peer.send(Frame(requestID: second.requestID, .error(ErrorReply(code: .notFound, message: "no such file"))))
            return path
        }
        #expect(try client.resolve("/link/x") == "/real/link/x")
        let error = handsError { _ = try client.resolve("/missing") }
        #expect(try guest.join() == "/link/x")
        #expect(error?.remoteReply?.code == .notFound)
    }

    @Test func pingWaitsForItsNonceToComeBack() throws {
        let delay = 0.05
        let (client, guest) = try connect { peer in
            var ids: [UInt32] = []
            for _ in 0..<2 {
                let ping = try peer.receive()
                guard case .ping(let nonce) = ping.message else { throw FakeError("expected Ping, got \(ping)") }
                ids.append(ping.requestID)
                Thread.sleep(forTimeInterval: delay)
                try peer.send(Frame(requestID: ping.requestID, .pong(nonce: nonce)))
            }
            return ids
        }
        let start = monotonic()
        try client.ping()
        try client.ping()
        let elapsed = monotonic() - start
        let ids = try guest.join()
        #expect(elapsed >= 2 * delay)
        #expect(ids.count == 2 && ids[0] != ids[1])
    }

    @Test func aPongWithAnotherNonceIsUnexpected() throws {
        let (client, guest) = try connect { peer in
            let ping = try peer.receive()
            guard case .ping(let nonce) = ping.message else { throw FakeError("expected Ping, got \(ping)") }
            try peer.send(Frame(requestID: ping.requestID, .pong(nonce: nonce ^ 1)))
            return nonce ^ 1
        }
        let error = handsError { try client.ping() }
        let wrong = try guest.join()
        #expect(error?.unexpectedMessage == .pong(nonce: wrong), "got \(String(describing: error))")
    }

    @Test func aBadMagicIsAProtocolError() throws {
        let (client, guest) = try connect { peer in
            let ping = try peer.receive()
            var bytes = try peer.bytes([Frame(requestID: ping.requestID, .pong(nonce: 0))])
            bytes[0] = 0xEF
            bytes[1] = 0xBE
            try peer.write(bytes)
        }
        let error = handsError { try client.ping() }
        try guest.join()
        #expect(error?.doorsError == .badMagic(0xBEEF), "got \(String(describing: error))")
    }

    /// A guest that takes a stat and never answers: the call fails after the silence limit,
    /// and the connection is shut (the guest sees its end), rather than holding the host's
    /// thread for ever.
    @Test(.timeLimit(.minutes(1))) func aStatTheGuestNeverAnswersTimesOut() throws {
        let (client, guest) = try connect(silenceSeconds: 0.5) { peer in
            let request = try peer.receive()
            try peer.expectEOF()
            return request
        }
        let start = monotonic()
        let error = handsError { _ = try client.stat("/evidence/a") }
        let elapsed = monotonic() - start
        let request = try guest.join()
        #expect(request.message == .stat(StatRequest(path: "/evidence/a")))
        let what = try #require(error?.timedOutWaitingFor, "got \(String(describing: error))")
        #expect(what.contains("stat of /evidence/a"))
        #expect(elapsed >= 0.45 && elapsed < 10)
        // The connection is out of step now: a later call fails at once.
        #expect(handsError { try client.ping() }?.isConnectionClosed == true)
    }

    /// A read whose guest sends one chunk and then goes silent: the limit is between frames.
    @Test(.timeLimit(.minutes(1))) func aReadTheGuestStopsSendingTimesOut() throws {
        let (client, guest) = try connect(silenceSeconds: 0.5) { peer in
            let request = try peer.receive()
            try peer.send(Frame(requestID: request.requestID, .fileData([1, 2, 3])))
            try peer.expectEOF()
        }
        var received: [UInt8] = []
        let error = handsError { _ = try client.readFile(ReadFileRequest(path: "/evidence/log")) { received += $0 } }
        try guest.join()
        #expect(received == [1, 2, 3])
        #expect(error?.timedOutWaitingFor?.contains("/evidence/log") == true, "got \(String(describing: error))")
    }

    /// A guest that stops reading in the middle of a write: the sends fill the socket, and the
    /// host gives up once it could send nothing for the limit.
    @Test(.timeLimit(.minutes(1))) func aWriteTheGuestStopsReadingTimesOut() throws {
        let source = try TempFile(pattern(16 << 20))
        var gate: [Int32] = [0, 0]
        try #require(pipe(&gate) == 0)
        defer { close(gate[0]); close(gate[1]) }
        let (waitEnd, openEnd) = (gate[0], gate[1])
        let (client, guest) = try connect(silenceSeconds: 0.5) { peer in
            _ = try peer.receive()  // the WriteFile; then nothing is read until the host gave up
            var byte: UInt8 = 0
            _ = read(waitEnd, &byte, 1)
            return try peer.drainToEOF()
        }
        let error = handsError { _ = try client.writeFile(WriteFileRequest(path: "/work/big"), from: source.fd) }
        _ = write(openEnd, [1], 1)
        let drained = try guest.join()
        #expect(drained < 16 << 20)
        #expect(error?.timedOutWaitingFor?.contains("read a Doors frame") == true, "got \(String(describing: error))")
    }

    /// A guest that sends more than a read asked for: the call ends at the first byte past it,
    /// the bytes within it passed on, and the connection is shut (the guest sees its end).
    @Test(.timeLimit(.minutes(1))) func aReadPastItsLengthEndsTheCall() throws {
        let (client, guest) = try connect { peer in
            let request = try peer.receive()
            try peer.send(Frame(requestID: request.requestID, .fileData([1, 2, 3])),
                          Frame(requestID: request.requestID, .fileData([4, 5, 6])))
            _ = try? peer.drainToEOF()
            return request
        }
        var received: [UInt8] = []
        let error = handsError { _ = try client.readFile(ReadFileRequest(path: "/evidence/log", length: 4)) { received += $0 } }
        let request = try guest.join()
        #expect(request.message == .readFile(ReadFileRequest(path: "/evidence/log", length: 4)))
        #expect(received == [1, 2, 3])
        if case .exceeded(let what)? = error {
            #expect(what == "a read of /evidence/log past the 4 bytes asked for")
        } else {
            Issue.record("got \(String(describing: error))")
        }
        #expect(handsError { try client.ping() }?.isConnectionClosed == true)
    }
}
