@testable import Agents
import Doors
import Foundation
import Glibc
import Testing

/// The listener over a real Unix socket: one call, one reply, a malformed frame answered
/// without reaching the handler, and the socket file gone after stop.
@Suite struct HandsListenerTests {
    func path() -> String { "/tmp/hands-listener-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock" }

    /// Connects, writes `bytes`, half-closes, and reads everything the listener sends back.
    func exchange(_ path: String, _ bytes: [UInt8]) throws -> [UInt8] {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(connected == 0)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        shutdown(fd, Int32(SHUT_WR))
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            reply += buffer[..<n]
        }
        return reply
    }

    func decode(_ bytes: [UInt8]) throws -> HandsReply {
        let (kind, length) = try HandsCallCodec.payloadLength(header: Array(bytes.prefix(HandsCallProtocol.headerSize)))
        #expect(bytes.count == HandsCallProtocol.headerSize + length)
        return try HandsCallCodec.decodeReply(kind: kind, payload: Array(bytes.dropFirst(HandsCallProtocol.headerSize)))
    }

    @Test func aCallIsHandledAndAnsweredOnce() throws {
        let seen = Box<HandsCall>()
        let listener = try HandsListener(path: path()) { call, _ in
            seen.value = call
            return HandsAnswer(.ok(fields: ["done"], data: [1, 2]))
        }
        defer { listener.stop() }
        let reply = try decode(try exchange(listener.path, HandsCallCodec.encode(.stop(agent: "x"))))
        #expect(reply == .ok(fields: ["done"], data: [1, 2]))
        #expect(seen.value == .stop(agent: "x"))
        // The socket is open to the jailed VMM's uid; its directory keeps others out.
        var info = stat()
        #expect(lstat(listener.path, &info) == 0 && info.st_mode & 0o777 == 0o666)
    }

    @Test func aMalformedFrameIsAnsweredWithoutReachingTheHandler() throws {
        let reached = Box<Bool>()
        let listener = try HandsListener(path: path()) { _, _ in
            reached.value = true
            return HandsAnswer(.ok(fields: [], data: []))
        }
        defer { listener.stop() }
        let bad: [UInt8] = [0x4D, 0x48, 1, 0x22, 3, 0, 0, 0, 9, 9, 9]
        guard case .failed(.invalid, let message) = try decode(try exchange(listener.path, bad)) else {
            Issue.record("expected an invalid-call reply")
            return
        }
        #expect(message.contains("malformed hands call"))
        let oversized: [UInt8] = [0x4D, 0x48, 1, 0x01, 0xff, 0xff, 0xff, 0x7f]
        guard case .failed(.invalid, _) = try decode(try exchange(listener.path, oversized)) else {
            Issue.record("expected an invalid-call reply for an oversized frame")
            return
        }
        #expect(reached.value == nil)
    }

    @Test func stopRemovesTheSocketAndAnotherFileIsNeverReplaced() throws {
        let where_ = path()
        let listener = try HandsListener(path: where_) { _, _ in HandsAnswer(.ok(fields: [], data: [])) }
        listener.stop()
        #expect(access(where_, F_OK) != 0)
        let fd = open(where_, O_CREAT | O_WRONLY, 0o600)
        close(fd)
        defer { unlink(where_) }
        #expect(throws: AgentError.self) { try HandsListener(path: where_) { _, _ in HandsAnswer(.ok(fields: [], data: [])) } }
        #expect(access(where_, F_OK) == 0)
    }

    @Test func aCallerThatHangsUpIsSeenAndItsUndeliveredReplyUndone() throws {
        let hungUp = Box<Bool>()
        let undone = DispatchSemaphore(value: 0)
        let listener = try HandsListener(path: path()) { _, caller in
            // Blocks as a door receive would, until the caller is gone.
            for _ in 0..<100 where !caller.hasHungUp { usleep(50_000) }
            hungUp.value = caller.hasHungUp
            return HandsAnswer(.ok(fields: [], data: [1])) { undone.signal() }
        }
        defer { listener.stop() }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(listener.path.utf8)) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(connected == 0)
        let frame = HandsCallCodec.encode(.doorReceive(door: "d", timeoutMilliseconds: 60_000))
        _ = frame.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        usleep(200_000)
        // Still there: not hung up yet.
        #expect(hungUp.value == nil)
        close(fd)
        #expect(undone.wait(timeout: .now() + 5) == .success)
        #expect(hungUp.value == true)
    }
}
