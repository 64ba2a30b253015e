@testable import Agents
import Doors
import Foundation
import Glibc
import Testing

/// The listener over a real Unix socket: one call, one reply, a malformed frame answered
/// without reaching the handler, and the socket file gone after stop.
@Suite struct HandsListenerTests {
    func path() -> String { "/tmp/hands-listener-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock" }
    func place(_ path: String) -> HandsSocketPlace { HandsSocketPlace(path: path, staging: "/tmp") }

    /// Connects, writes `bytes`, half-closes, and reads everything the listener sends back.
    func exchange(_ path: String, _ bytes: [UInt8]) throws -> [UInt8] {
        let fd = try dial(path)
        defer { close(fd) }
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
        let listener = try HandsListener(place: place(path())) { call, _ in
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
        let listener = try HandsListener(place: place(path())) { _, _ in
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
        let listener = try HandsListener(place: place(where_)) { _, _ in HandsAnswer(.ok(fields: [], data: [])) }
        listener.stop()
        #expect(access(where_, F_OK) != 0)
        let fd = open(where_, O_CREAT | O_WRONLY, 0o600)
        close(fd)
        defer { unlink(where_) }
        #expect(throws: AgentError.self) { try HandsListener(place: place(where_)) { _, _ in HandsAnswer(.ok(fields: [], data: [])) } }
        #expect(access(where_, F_OK) == 0)
    }

    /// The socket lives in a directory the jailed VMM owns, where the VMM could swap a new
    /// socket for a symlink before a chmod(2) by path reached it. So the socket is made and
    /// given its mode in the host's own directory and only moved into the jail's: inotify on the
    /// jail's directory sees it arrive by rename, never created or chmod-ed there.
    @Test func theSocketIsMadeInTheHostsDirectoryAndMovedIntoTheJails() throws {
        var template = Array("/tmp/hands-jail.XXXXXX".utf8CString)
        let jail = String(cString: mkdtemp(&template)!)
        template = Array("/tmp/hands-host.XXXXXX".utf8CString)
        let host = String(cString: mkdtemp(&template)!)
        defer {
            unlink(jail + "/hands.sock")
            rmdir(jail)
            rmdir(host)
        }
        let watch = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        try #require(watch >= 0)
        defer { close(watch) }
        try #require(inotify_add_watch(watch, jail, UInt32(IN_CREATE | IN_MOVED_TO | IN_ATTRIB)) >= 0)
        let listener = try HandsListener(place: HandsSocketPlace(path: jail + "/hands.sock", staging: host)) { _, _ in
            HandsAnswer(.ok(fields: [], data: []))
        }
        defer { listener.stop() }
        let events = Self.events(watch)
        #expect(events.contains { $0.name == "hands.sock" && $0.mask & UInt32(IN_MOVED_TO) != 0 })
        #expect(!events.contains { $0.mask & UInt32(IN_CREATE | IN_ATTRIB) != 0 }, "made or chmod-ed in the jail's directory: \(events)")
        var info = stat()
        #expect(lstat(jail + "/hands.sock", &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK && info.st_mode & 0o777 == 0o666)
        // Nothing staged is left behind in the host's directory.
        #expect(try FileManager.default.contentsOfDirectory(atPath: host).isEmpty)
    }

    /// The events queued on an inotify descriptor (inotify(7): wd, mask, cookie, len, name).
    static func events(_ watch: Int32) -> [(mask: UInt32, name: String)] {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { read(watch, $0.baseAddress, $0.count) }
        var events: [(mask: UInt32, name: String)] = []
        var offset = 0
        while n > 0, offset + 16 <= n {
            let word = { (at: Int) in buffer[at..<at + 4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
            let mask = word(offset + 4), length = Int(word(offset + 12))
            let name = String(decoding: buffer[(offset + 16)..<min(offset + 16 + length, n)].prefix { $0 != 0 }, as: UTF8.self)
            events.append((mask, name))
            offset += 16 + length
        }
        return events
    }

    /// Connects to `path`; the descriptor is the caller's to close.
    func dial(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(connected == 0)
        return fd
    }

    /// A caller that sends its frame a byte every 50 ms would have reset a per-read timeout
    /// forever; the whole frame has a deadline, and the connection is closed at it.
    @Test func aFrameTrickledInIsCutOffAtItsDeadline() throws {
        let reached = Box<Bool>()
        let listener = try HandsListener(place: place(path()), frameDeadline: .milliseconds(300)) { _, _ in
            reached.value = true
            return HandsAnswer(.ok(fields: [], data: []))
        }
        defer { listener.stop() }
        let fd = try dial(listener.path)
        defer { close(fd) }
        let frame = HandsCallCodec.encode(.stop(agent: "a-rather-long-agent-name-to-trickle"))
        var sent = 0
        for byte in frame {
            var one = byte
            guard send(fd, &one, 1, Int32(MSG_NOSIGNAL)) == 1 else { break }
            sent += 1
            usleep(50_000)
        }
        // 300 ms lets about six bytes through, of the frame's \(frame.count).
        #expect(sent < frame.count / 2, "\(sent) of \(frame.count) bytes were taken")
        #expect(reached.value == nil)
    }

    /// A caller that never reads its reply does not hold the call's thread: the reply has a
    /// deadline, and a reply not taken by then is undelivered (a door message goes back).
    @Test func aReplyNobodyTakesIsUndeliveredAtItsDeadline() throws {
        let undone = DispatchSemaphore(value: 0)
        let listener = try HandsListener(place: place(path()), replyDeadline: .milliseconds(300)) { _, _ in
            // Far more than a socket's buffers hold.
            HandsAnswer(.ok(fields: [], data: [UInt8](repeating: 7, count: 1_000_000))) { undone.signal() }
        }
        defer { listener.stop() }
        let fd = try dial(listener.path)
        defer { close(fd) }
        let frame = HandsCallCodec.encode(.stop(agent: "x"))
        _ = frame.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // The caller stays connected and reads nothing.
        #expect(undone.wait(timeout: .now() + 10) == .success)
    }

    @Test func aCallerThatHangsUpIsSeenAndItsUndeliveredReplyUndone() throws {
        let hungUp = Box<Bool>()
        let undone = DispatchSemaphore(value: 0)
        let listener = try HandsListener(place: place(path())) { _, caller in
            // Blocks as a door receive would, until the caller is gone.
            for _ in 0..<100 where !caller.hasHungUp { usleep(50_000) }
            hungUp.value = caller.hasHungUp
            return HandsAnswer(.ok(fields: [], data: [1])) { undone.signal() }
        }
        defer { listener.stop() }
        let fd = try dial(listener.path)
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
