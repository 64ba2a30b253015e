import Glibc
import POSIX
import Testing

@Suite struct FileIOTests {
    /// A pipe whose ends close once: when a test closes one, or when the test ends. Both ends are
    /// close-on-exec at once (Swift's Glibc has no pipe2): a process another test starts must not
    /// keep an end open, or a reader waits for an end of file that does not come.
    final class Pipe {
        private(set) var read: Int32, write: Int32
        init() throws {
            var fds: [Int32] = [-1, -1]
            try #require(pipe(&fds) == 0)
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            read = fds[0]
            write = fds[1]
        }
        func closeRead() {
            if read >= 0 { close(read) }
            read = -1
        }
        func closeWrite() {
            if write >= 0 { close(write) }
            write = -1
        }
        deinit {
            closeRead()
            closeWrite()
        }
    }

    @Test func readAllReturnsEverythingUpToTheLimit() throws {
        let pipe = try Pipe()
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try FileIO.writeAll(pipe.write, bytes)
        pipe.closeWrite()
        #expect(try FileIO.readAll(pipe.read, limit: 10_000) == bytes)
    }

    @Test func readAllRefusesMoreThanTheLimitWithEFBIG() throws {
        let pipe = try Pipe()
        try FileIO.writeAll(pipe.write, [UInt8](repeating: 1, count: 5000))
        pipe.closeWrite()
        #expect(throws: SystemError("read", errno: EFBIG)) { try FileIO.readAll(pipe.read, limit: 4999) }
    }

    @Test func readFileNamesThePathItCannotOpen() {
        #expect(throws: SystemError("open", errno: ENOENT, subject: "/nonexistent/momin")) {
            try FileIO.readFile("/nonexistent/momin", limit: 10)
        }
        let error = SystemError("open", errno: ENOENT, subject: "/nonexistent/momin")
        #expect(error.description == "open /nonexistent/momin: No such file or directory")
    }

    @Test func writeAllToAClosedPipeFailsWithEPIPE() throws {
        let pipe = try Pipe()
        pipe.closeRead()
        var ignore = sigaction()
        ignore.__sigaction_handler.sa_handler = SIG_IGN
        var previous = sigaction()
        sigaction(SIGPIPE, &ignore, &previous)
        defer { sigaction(SIGPIPE, &previous, nil) }
        // A process another test starts may hold the read end from its fork until its exec:
        // the write fails with EPIPE once no reader is left.
        let deadline = MonotonicClock.deadline(after: 10)
        var outcome = Result<Void, SystemError> { () throws(SystemError) in try FileIO.writeAll(pipe.write, [1, 2, 3]) }
        while case .success = outcome, MonotonicClock.nanoseconds() < deadline {
            usleep(10_000)
            outcome = Result { () throws(SystemError) in try FileIO.writeAll(pipe.write, [1, 2, 3]) }
        }
        guard case .failure(let error) = outcome else {
            Issue.record("writes to a pipe with no reader kept succeeding for 10 s")
            return
        }
        #expect(error == SystemError("write", errno: EPIPE))
    }

    /// readExactly keeps the bytes as they come, past its 64 KiB piece, in order; a peer that
    /// stops short gives nil, not what it sent.
    @Test func readExactlyGathersACountLargerThanOnePieceAndRefusesAShortOne() throws {
        var fds: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        defer { close(fds[0]) }
        let bytes = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        let writer = fds[1]
        try POSIXThread.detach(name: "writer") {
            _ = try? FileIO.sendAll(writer, bytes[..<70_000])
            _ = try? FileIO.sendAll(writer, bytes[70_000...])
            _ = try? FileIO.sendAll(writer, [1, 2, 3])
            close(writer)
        }
        #expect(FileIO.readExactly(fds[0], count: bytes.count, until: MonotonicClock.deadline(after: 10)) == bytes)
        #expect(FileIO.readExactly(fds[0], count: 10, until: MonotonicClock.deadline(after: 10)) == nil)
    }

    /// MSG_NOSIGNAL: a peer that has gone is an error, and the process lives on without
    /// ignoring SIGPIPE.
    @Test func sendAllToAGonePeerIsAnErrorNotASignal() throws {
        var fds: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer { close(fds[0]) }
        close(fds[1])
        #expect(throws: SystemError("send", errno: EPIPE)) { try FileIO.sendAll(fds[0], [UInt8](repeating: 0, count: 100)) }
    }

    @Test func preadFullyReadsAtAnOffsetAndStopsAtTheEnd() throws {
        var template = Array("/tmp/momin-posix-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        defer { close(fd); template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) } }
        try FileIO.writeAll(fd, Array("0123456789".utf8))
        var buffer = [UInt8](repeating: 0, count: 8)
        let count = try buffer.withUnsafeMutableBytes { try FileIO.preadFully(fd, into: $0, at: 6) }
        #expect(count == 4)
        #expect(Array(buffer[..<4]) == Array("6789".utf8))
    }
}

@Suite struct WaitTests {
    /// No wall-clock upper bound (it could flake on a loaded 2-core box): a wait that did not
    /// end would run into the time limit.
    @Test(.timeLimit(.minutes(1))) func aDeadlineInThePastDoesNotWait() {
        let monitor = Monitor()
        let start = MonotonicClock.nanoseconds()
        let ready = monitor.holding { monitor.wait(until: start) { false } }
        #expect(!ready)
    }

    @Test func deadlinesSaturateInsteadOfOverflowing() {
        #expect(MonotonicClock.deadline(after: .infinity) > MonotonicClock.nanoseconds())
        #expect(MonotonicClock.deadline(after: -5) <= MonotonicClock.nanoseconds())
        #expect(MonotonicClock.deadline(after: .nan) <= MonotonicClock.nanoseconds())
    }

    @Test func giveUpEndsAWaitWithoutADeadline() {
        let monitor = Monitor()
        var asked = 0
        let ready = monitor.holding { monitor.wait(until: nil, giveUp: { asked += 1; return asked > 1 }) { false } }
        #expect(!ready)
        #expect(asked == 2)
    }

    @Test func aCompletionWakesItsWaiterFromAnotherThread() throws {
        let done = Completion()
        #expect(!done.wait(seconds: 0.01))
        try POSIXThread.detach(name: "signaller") { done.signal() }
        #expect(done.wait(seconds: 30))
        #expect(done.isSignalled)
    }

    @Test func aThreadIsJoinedOnlyOnceItsBodyReturns() throws {
        let release = Completion()
        let thread = try POSIXThread(name: "held") { release.wait() }
        #expect(!thread.join(seconds: 0.05))
        release.signal()
        #expect(thread.join(seconds: 30))
        thread.join()  // a second join is a no-op, not undefined behaviour
    }

    @Test func aThreadIsNamedInProc() throws {
        final class Seen: @unchecked Sendable {
            let lock = Lock()
            var name = ""
        }
        let seen = Seen()
        let thread = try POSIXThread(name: "a-very-long-thread-name") {
            let text = (try? FileIO.readFile("/proc/thread-self/comm", limit: 64)) ?? []
            seen.lock.withLock { seen.name = String(decoding: text, as: UTF8.self) }
        }
        #expect(thread.join(seconds: 30))
        #expect(seen.lock.withLock { seen.name } == "a-very-long-thr\n")
    }
}

@Suite struct RetryTests {
    @Test func eintrIsRetriedAndOtherErrorsReturned() {
        var calls = 0
        let result: Int32 = retryingEINTR {
            calls += 1
            if calls < 3 { errno = EINTR; return -1 }
            errno = EBADF
            return -1
        }
        #expect(result == -1)
        #expect(calls == 3)
        #expect(errno == EBADF)
    }
}
