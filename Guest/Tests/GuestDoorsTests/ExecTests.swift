import Doors
import Glibc
@testable import GuestDoors
import POSIX
import Testing

extension ServerTests {
    @Suite struct Exec {
        @Test func echoStreamsStdoutBetweenStartedAndExit() throws {
            let client = try DoorsClient()
            let outcome = try client.exec(ExecRequest(argv: ["echo", "hello", "world"]))
            #expect(outcome.error == nil)
            #expect(outcome.stdoutText == "hello world\n")
            #expect(outcome.exit == ExitReport(status: .exited(code: 0)))
            #expect(outcome.types.first == .started)
            #expect(outcome.types.last == .exit)
            #expect((outcome.pid ?? 0) > 0)
        }

        @Test func exitCodeAndSeparateStderr() throws {
            let client = try DoorsClient()
            let outcome = try client.exec(ExecRequest(argv: ["sh", "-c", "echo out; echo err >&2; exit 7"]))
            #expect(outcome.exit == ExitReport(status: .exited(code: 7)))
            #expect(outcome.stdoutText == "out\n")
            #expect(outcome.stderrText == "err\n")
        }

        @Test func terminatingSignalIsReported() throws {
            let client = try DoorsClient()
            let outcome = try client.exec(ExecRequest(argv: ["sh", "-c", "kill -TERM $$"]))
            #expect(outcome.exit == ExitReport(status: .signaled(signal: UInt8(SIGTERM))))
        }

        @Test func environmentWorkingDirectoryAndSearchPath() throws {
            let client = try DoorsClient()
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let request = ExecRequest(
                argv: ["sh", "-c", "echo \"$GREETING\"; pwd; echo \"$PATH\""],
                env: ["GREETING=hi there", "PATH=/nonexistent:/usr/bin:/bin"],
                cwd: scratch.path)
            let outcome = try client.exec(request)
            #expect(outcome.stdoutText == "hi there\n\(scratch.path)\n/nonexistent:/usr/bin:/bin\n")
            #expect(outcome.exit == ExitReport(status: .exited(code: 0)))

            // A missing working directory is an error from exec, not a child that fails.
            let missing = try client.exec(ExecRequest(argv: ["true"], cwd: scratch.path + "/missing"))
            #expect(missing.error?.code == .notFound)
        }

        @Test func stdinRoundTripThroughCat() throws {
            let client = try DoorsClient()
            var generator = ByteGenerator(seed: 7)
            let input = generator.next(300_000)
            let outcome = try client.exec(ExecRequest(argv: ["cat"], sendsStdin: true), stdin: input)
            #expect(outcome.exit == ExitReport(status: .exited(code: 0)))
            #expect(outcome.stdout.count == input.count)
            #expect(outcome.stdout == input)
        }

        @Test func withoutStdinTheChildReadsDevNull() throws {
            let client = try DoorsClient()
            let outcome = try client.exec(ExecRequest(argv: ["sh", "-c", "cat; echo done"]))
            #expect(outcome.stdoutText == "done\n")
            #expect(outcome.exit == ExitReport(status: .exited(code: 0)))
        }

        // Times are only lower bounds (a deadline is not met early); that nothing waits for a
        // 1000 s sleep is shown by the 1-minute time limit, which a 2-core CI box cannot flake.
        @Test(.timeLimit(.minutes(1))) func timeoutKillsWithSIGKILL() throws {
            let client = try DoorsClient()
            let start = MonotonicClock.nanoseconds()
            let outcome = try client.exec(ExecRequest(argv: ["sleep", "1000"], timeoutMilliseconds: 300))
            let elapsed = Double(MonotonicClock.nanoseconds() - start) / 1e9
            #expect(outcome.exit == ExitReport(status: .signaled(signal: UInt8(SIGKILL)), timedOut: true))
            #expect(elapsed >= 0.25)
        }

        @Test(.timeLimit(.minutes(1))) func timeoutAlsoKillsWhatTheChildStarted() throws {
            // The child's process group is killed, so the grandchild's hold on stdout ends too.
            let client = try DoorsClient()
            let outcome = try client.exec(ExecRequest(argv: ["sh", "-c", "sleep 1000; echo never"], timeoutMilliseconds: 200))
            #expect(outcome.exit?.timedOut == true)
            #expect(outcome.stdout.isEmpty)
        }

        @Test func killSendsTheRequestedSignal() throws {
            let client = try DoorsClient()
            let id = client.newID()
            try client.send(Frame(requestID: id, .exec(ExecRequest(argv: ["sleep", "30"]))))
            let started = try client.receive()
            guard case .started(let pid) = started.message else {
                Issue.record("expected Started, got \(started)")
                return
            }
            #expect(processExists(pid))
            try client.send(Frame(requestID: id, .kill(signal: UInt8(SIGTERM))))
            let outcome = try client.collectExec(id)
            #expect(outcome.exit == ExitReport(status: .signaled(signal: UInt8(SIGTERM)), timedOut: false))
            // A Kill after Exit is for an id no longer in flight: dropped, the connection lives on.
            try client.send(Frame(requestID: id, .kill(signal: 9)))
            #expect(try client.call(.ping(nonce: 5)) == .pong(nonce: 5))
        }

        @Test func cancelKillsAndStillEndsWithExit() throws {
            let client = try DoorsClient()
            let id = client.newID()
            try client.send(Frame(requestID: id, .exec(ExecRequest(argv: ["sleep", "30"]))))
            try client.send(Frame(requestID: id, .cancel))
            let outcome = try client.collectExec(id)
            #expect(outcome.types.first == .started)
            #expect(outcome.exit == ExitReport(status: .signaled(signal: UInt8(SIGKILL))))
        }

        @Test func missingProgramIsAnErrorFrame() throws {
            let client = try DoorsClient()
            let bare = try client.exec(ExecRequest(argv: ["no-such-program-momin-test"]))
            #expect(bare.error?.code == .notFound)
            #expect(bare.error?.errno == ENOENT)
            #expect(bare.types == [.error])
            let absolute = try client.exec(ExecRequest(argv: ["/no/such/program"]))
            #expect(absolute.error?.code == .notFound)
            #expect(absolute.error?.errno == ENOENT)
            // The connection carries on.
            let after = try client.exec(ExecRequest(argv: ["true"]))
            #expect(after.exit == ExitReport(status: .exited(code: 0)))
        }

        @Test func notExecutableIsPermissionDenied() throws {
            let client = try DoorsClient()
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let file = scratch.path + "/plain"
            #expect(try client.writeFile(file, [Array("echo hi\n".utf8)], permissions: 0o644) == .ok(count: 8))
            let outcome = try client.exec(ExecRequest(argv: [file]))
            #expect(outcome.error?.code == .permissionDenied)
        }

        @Test func largeOutputArrivesWhole() throws {
            let client = try DoorsClient()
            let size = 8 << 20
            let line = Array("0123456789abcdef\n".utf8)
            var expected = Checksum()
            var pattern: [UInt8] = []
            while pattern.count < size { pattern += line }
            expected.add(Array(pattern.prefix(size)))

            let outcome = try client.exec(ExecRequest(argv: ["sh", "-c", "yes 0123456789abcdef | head -c \(size)"]))
            #expect(outcome.exit == ExitReport(status: .exited(code: 0)))
            #expect(outcome.stdout.count == size)
            var received = Checksum()
            received.add(outcome.stdout)
            #expect(received.final == expected.final)
            #expect(outcome.largestChunk <= (client.session?.maxPayload ?? 0))
        }

        @Test func unreadOutputIsBoundedByBackpressure() throws {
            // `yes` writes as fast as it can. While the client does not read, the server must
            // stop reading the pipe, so `yes` blocks after a bounded amount instead of the
            // server buffering without end.
            let client = try DoorsClient()
            let id = client.newID()
            try client.send(Frame(requestID: id, .exec(ExecRequest(argv: ["yes"]))))
            guard case .started(let pid) = try client.receive().message else {
                Issue.record("expected Started")
                return
            }
            usleep(1_000_000)
            let early = bytesWritten(by: pid)
            usleep(500_000)
            let late = bytesWritten(by: pid)
            #expect(early != nil)
            #expect(early == late, "yes kept writing while nobody read: \(early ?? -1) then \(late ?? -1) bytes")
            #expect((late ?? .max) < 8 << 20, "\(late ?? -1) bytes were accepted for a client that was not reading")

            // Reading again lets it run; then stop it.
            var received = 0
            while received < 4 << 20 {
                if case .stdoutData(let bytes) = try client.receive().message { received += bytes.count }
            }
            #expect((bytesWritten(by: pid) ?? 0) > late ?? .max)
            try client.send(Frame(requestID: id, .kill(signal: 9)))
            let outcome = try client.collectExec(id)
            #expect(outcome.exit == ExitReport(status: .signaled(signal: 9)))
        }

        @Test(.timeLimit(.minutes(1))) func descendantsHoldingThePipeDoNotDelayExit() throws {
            let client = try DoorsClient()
            let outcome = try client.exec(ExecRequest(argv: ["sh", "-c", "echo first; sleep 1000 & echo $! >&2; exit 3"]))
            #expect(outcome.exit == ExitReport(status: .exited(code: 3)))
            #expect(outcome.stdoutText == "first\n")
            // The sleep still holds the pipe; it is not left behind.
            let sleeper = try #require(outcome.stderrText.split(separator: "\n").first.flatMap { pid_t($0) })
            #expect(kill(sleeper, SIGKILL) == 0)
        }

        @Test func manyExecsLeaveNoZombies() throws {
            let client = try DoorsClient()
            for index in 0..<60 {
                // Every other child leaves an orphan behind, which the reaper must collect too.
                let script = index % 2 == 0 ? "exit 0" : "sleep 0.3 & exit 0"
                let outcome = try client.exec(ExecRequest(argv: ["sh", "-c", script]))
                #expect(outcome.exit == ExitReport(status: .exited(code: 0)))
            }
            // The orphans (reparented to this process, which stands in for PID 1) are still
            // sleeping at first; once they exit they must be reaped, not left as zombies.
            #expect(childProcesses().count > 0, "the orphans should still be running")
            #expect(eventually(seconds: 10) { childProcesses().isEmpty }, "children left: \(childProcesses())")
            #expect(zombieChildren().isEmpty)
        }
    }
}
