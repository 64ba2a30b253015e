import Audit
import Crypto
import Doors
import Foundation
import Gateway
import Glibc
import GuestClient
@testable import GuestClientTestSupport
import Merkle
import Policy
import Testing

/// The gateway against a fake guest: what reaches the guest, what the log holds.
@Suite struct ToolGatewayTests {
    static let policyText = """
        version: 1
        agent: tester
        tools:
          exec:
            - program: /usr/bin/echo
              args: any
            - program: /usr/bin/cat
              args: { rest: ["path:/evidence/**"], max: 4 }
        limits:
          cycles: 3
          call_timeout: 20s
        """

    /// What the fake guest saw, and a fake file system for Resolve: symlinks by path.
    struct GuestSaw: Sendable {
        var execs: [ExecRequest] = []
        var resolves: [String] = []
    }

    /// Serves until the client hangs up: Resolve through `links` (a path that is a key resolves
    /// to its value; paths under /missing do not exist), Stat of a missing path not found,
    /// Exec answered with `output` on stdout and exit 0.
    static func fakeGuest(links: [String: String] = [:], output: [UInt8] = Array("hello\n".utf8)) throws
        -> (DoorsClient, Running<GuestSaw>) {
        try connect { peer in
            var saw = GuestSaw()
            while true {
                guard let frame = try? peer.receive() else { return saw }
                switch frame.message {
                case .resolve(let path):
                    saw.resolves.append(path)
                    if path.hasPrefix("/missing") {
                        try peer.send(Frame(requestID: frame.requestID, .error(ErrorReply(code: .notFound, message: "no such file"))))
                    } else {
                        try peer.send(Frame(requestID: frame.requestID, .resolved(path: links[path] ?? path)))
                    }
                case .stat:
                    try peer.send(Frame(requestID: frame.requestID, .error(ErrorReply(code: .notFound, message: "no such file"))))
                case .exec(let request):
                    saw.execs.append(request)
                    try peer.send(
                        Frame(requestID: frame.requestID, .started(pid: 7)),
                        Frame(requestID: frame.requestID, .stdoutData(output)),
                        Frame(requestID: frame.requestID, .exit(ExitReport(status: .exited(code: 0)))))
                default:
                    throw FakeError("unexpected \(frame)")
                }
            }
        }
    }

    /// A fresh audit log in a temporary directory, removed with it.
    final class TemporaryLog {
        let directory: String
        let log: AuditLog
        init() throws {
            directory = try makeTempDirectory()
            log = try AuditLog(path: directory + "/audit.db", options: AuditLog.Options(keyPath: directory + "/audit.key"))
        }
        func events() throws -> [AuditEvent] {
            try (0..<log.size).map { try #require(try log.record(at: $0)).event }
        }
        deinit {
            try? log.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    func policy() throws -> AgentPolicy {
        try AgentPolicy.parse(Self.policyText, format: .yaml, file: "test.yaml")
    }

    @Test func anAllowedExecRunsAndItsRequestDecisionAndResultAreLogged() throws {
        var (client, guest): (DoorsClient?, Running<GuestSaw>) = try Self.fakeGuest()
        let audit = try TemporaryLog()
        var gateway: ToolGateway! = ToolGateway(agent: "tester", client: client!, policy: try policy(), log: audit.log)
        var stdout: [UInt8] = []
        let report = try gateway.exec(ExecRequest(argv: ["/usr/bin/echo", "hello"]), input: .none) { if $0 { stdout += $1 } }
        #expect(report.status == .exited(code: 0))
        #expect(stdout == Array("hello\n".utf8))
        client = nil
        gateway = nil  // the last references: the socket closes and the fake guest ends
        let saw = try guest.join()
        #expect(saw.execs.map(\.argv) == [["/usr/bin/echo", "hello"]])
        #expect(saw.execs.first?.timeoutMilliseconds == 20_000)  // the policy's call_timeout

        let events = try audit.events()
        try #require(events.count == 3)
        guard case .toolRequest(let request) = events[0], case .decision(let decision) = events[1],
              case .resultDigest(let result) = events[2] else {
            Issue.record("events in the wrong order: \(events.map(\.kind))")
            return
        }
        #expect(request.requestID == 1 && request.agent == "tester" && request.tool == "exec")
        // The logged arguments are the request itself, in its Doors encoding.
        var decoder = FrameDecoder()
        decoder.append(request.arguments[...])
        guard case .exec(let logged)? = try decoder.next()?.message else {
            Issue.record("the logged arguments are not an exec request: \(request.arguments.count) bytes")
            return
        }
        #expect(logged.argv == ["/usr/bin/echo", "hello"] && logged.timeoutMilliseconds == 20_000)
        #expect(decision.requestID == 1 && decision.verdict == .allow && decision.rule == "tools.exec[0]")
        #expect(result.requestID == 1 && result.status == 0 && result.byteCount == 6)
        #expect(result.sha256 == MerkleHash(bytes: Array(SHA256.hash(data: [1] + Array("hello\n".utf8)))))
    }

    /// A guest that resolves paths as written, starts an exec and then neither ends it nor
    /// answers its Cancel; it returns what it was sent after the exec.
    static func stallingGuest() throws -> (DoorsClient, Running<[DoorsMessage]>) {
        try connect { peer in
            var request = try peer.receive()
            while case .resolve(let path) = request.message {
                try peer.send(Frame(requestID: request.requestID, .resolved(path: path)))
                request = try peer.receive()
            }
            try peer.send(Frame(requestID: request.requestID, .started(pid: 7)))
            var seen: [DoorsMessage] = []
            while let frame = try? peer.receive() { seen.append(frame.message) }
            return seen
        }
    }

    /// A policy that allows /usr/bin/sleep, with `limits` (YAML lines, indented by two after the first).
    static func sleepPolicy(limits: String) throws -> AgentPolicy {
        try AgentPolicy.parse("""
            version: 1
            agent: tester
            tools:
              exec:
                - program: /usr/bin/sleep
                  args: any
            limits:
              \(limits)
            """, format: .yaml, file: "test.yaml")
    }

    /// Runs `request` through `gateway` (its exit grace cut to 200 ms) and expects the host to
    /// give up on the guest.
    static func expectGivenUp(_ gateway: ToolGateway, _ request: ExecRequest) throws {
        gateway.exitGrace = .milliseconds(200)
        var thrown: GatewayError?
        do { _ = try gateway.exec(request, input: .none) { _, _ in } } catch { thrown = error }
        guard case .guest(.timedOut)? = thrown else {
            throw FakeError("expected the host to give up on the exec, got \(String(describing: thrown))")
        }
    }

    /// The host holds an exec to its timeout and to the session's wall time itself: a guest that
    /// ignores both is cancelled at the deadline, given `exitGrace`, and then given up on, and
    /// the call's result is logged as failed.
    @Test(arguments: [
        ("call_timeout: 20s", UInt32?.some(100)),  // the exec's own timeout, plus the slack
        ("wall_time: 1s\n  call_timeout: 1s", UInt32?.none),  // the call timeout, plus the slack, outlasts the wall time
    ])
    func anExecTheGuestDoesNotEndIsEndedByTheHost(limit: String, timeout: UInt32?) throws {
        let (client, guest) = try Self.stallingGuest()
        let audit = try TemporaryLog()
        let policy = try Self.sleepPolicy(limits: limit)
        let gateway = ToolGateway(agent: "tester", client: client, policy: policy, log: audit.log)
        try Self.expectGivenUp(gateway, ExecRequest(argv: ["/usr/bin/sleep", "1000"], timeoutMilliseconds: timeout))
        #expect(try guest.join() == [.cancel])
        let events = try audit.events()
        guard case .resultDigest(let result)? = events.last else {
            Issue.record("no result logged: \(events.map(\.kind))")
            return
        }
        #expect(result.status == -1)
    }

    /// A long-lived VM's session that began 59.5 s ago, with 60 s of wall time: an exec may
    /// run for what is left (half a second), not for its 60 s call timeout. Held to the call
    /// timeout alone, the host would cancel at 61 s and give up at 66 s: past the time limit.
    @Test(.timeLimit(.minutes(1))) func anExecEndsWithTheSessionsWallTime() throws {
        let (client, guest) = try Self.stallingGuest()
        let audit = try TemporaryLog()
        let policy = try Self.sleepPolicy(limits: "wall_time: 60s\n  call_timeout: 60s")
        var now = timespec()
        clock_gettime(CLOCK_BOOTTIME, &now)
        let started = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec) - 59_500_000_000
        let usage = audit.directory + "/limits"
        try "momin-limits 2\nagent tester - \(started) 100 60000000000 1000000 0 0\n".write(toFile: usage, atomically: true, encoding: .utf8)
        let gateway = ToolGateway(agent: "tester", client: client, policy: policy, log: audit.log,
                                  limits: TreeLimits.file(usage).session("tester", limits: policy.limits))
        try Self.expectGivenUp(gateway, ExecRequest(argv: ["/usr/bin/sleep", "1000"]))
        #expect(try guest.join() == [.cancel])
    }

    @Test func aDeniedExecNeverReachesTheGuestAndTheDenialIsLogged() throws {
        var (client, guest): (DoorsClient?, Running<GuestSaw>) = try Self.fakeGuest()
        let audit = try TemporaryLog()
        var gateway: ToolGateway! = ToolGateway(agent: "tester", client: client!, policy: try policy(), log: audit.log)
        var thrown: GatewayError?
        do { _ = try gateway.exec(ExecRequest(argv: ["/usr/bin/rm", "-rf", "/"]), input: .none) { _, _ in } } catch { thrown = error }
        guard case .denied(let decision)? = thrown else {
            Issue.record("expected a denial, got \(String(describing: thrown))")
            return
        }
        #expect(decision.rule.id == "tools.exec")
        #expect(thrown?.description.contains("/usr/bin/rm") == true)
        client = nil
        gateway = nil  // the last references: the socket closes and the fake guest ends
        #expect(try guest.join().execs.isEmpty)
        let events = try audit.events()
        #expect(events.map(\.kind) == ["tool-request", "decision"])
        if case .decision(let logged) = events.last {
            #expect(logged.verdict == .deny && logged.rule == "tools.exec" && logged.reason.contains("/usr/bin/rm"))
        }
    }

    /// `/evidence/link` points at /etc/shadow in the guest: cat of it is denied, though the
    /// path as written is under /evidence.
    @Test func aSymlinkOutOfTheAllowedTreeIsDenied() throws {
        var (client, guest): (DoorsClient?, Running<GuestSaw>) = try Self.fakeGuest(links: ["/evidence/link": "/etc/shadow"])
        var gateway: ToolGateway! = ToolGateway(agent: "tester", client: client!, policy: try policy(), log: nil)
        var denied = false
        do { _ = try gateway.exec(ExecRequest(argv: ["/usr/bin/cat", "/evidence/link"]), input: .none) { _, _ in } } catch {
            if case .denied = error { denied = true }
        }
        #expect(denied)
        let allowed = try gateway.exec(ExecRequest(argv: ["/usr/bin/cat", "/evidence/notes.txt"]), input: .none) { _, _ in }
        #expect(allowed.status == .exited(code: 0))
        client = nil
        gateway = nil  // the last references: the socket closes and the fake guest ends
        let saw = try guest.join()
        #expect(saw.execs.map(\.argv) == [["/usr/bin/cat", "/evidence/notes.txt"]])
        #expect(saw.resolves.contains("/evidence/link"))
    }

    @Test func theCycleLimitHolds() throws {
        var (client, guest): (DoorsClient?, Running<GuestSaw>) = try Self.fakeGuest()
        let audit = try TemporaryLog()
        var gateway: ToolGateway! = ToolGateway(agent: "tester", client: client!, policy: try policy(), log: audit.log)
        for _ in 0..<3 {
            _ = try gateway.exec(ExecRequest(argv: ["/usr/bin/echo"]), input: .none) { _, _ in }
        }
        var limit: Policy.Decision?
        do { _ = try gateway.exec(ExecRequest(argv: ["/usr/bin/echo"]), input: .none) { _, _ in } } catch {
            if case .denied(let decision) = error { limit = decision }
        }
        #expect(limit?.rule.id == "limits.cycles")
        client = nil
        gateway = nil  // the last references: the socket closes and the fake guest ends
        #expect(try guest.join().execs.count == 3)
        #expect(try audit.events().count == 3 * 3 + 2)
    }

    /// Without a policy every call is allowed, and still logged.
    @Test func withoutAPolicyCallsAreAllowedAndLogged() throws {
        var (client, guest): (DoorsClient?, Running<GuestSaw>) = try Self.fakeGuest()
        let audit = try TemporaryLog()
        var gateway: ToolGateway! = ToolGateway(agent: "free", client: client!, policy: nil, log: audit.log)
        _ = try gateway.exec(ExecRequest(argv: ["/bin/anything"]), input: .none) { _, _ in }
        client = nil
        gateway = nil  // the last references: the socket closes and the fake guest ends
        #expect(try guest.join().execs.count == 1)
        let events = try audit.events()
        #expect(events.map(\.kind) == ["tool-request", "decision", "result-digest"])
        if case .decision(let decision) = events[1] { #expect(decision.rule == "no-policy" && decision.verdict == .allow) }
    }
}

