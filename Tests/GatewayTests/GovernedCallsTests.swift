import Audit
import Buckets
import Crypto
import Doors
import Foundation
import Gateway
import Glibc
import GuestClient
@testable import GuestClientTestSupport
import Policy
import Testing

/// File copies, the output limit and bucket calls through the gateway.
@Suite struct GovernedCallsTests {
    static let policyText = """
        version: 1
        agent: tester
        tools:
          exec:
            - program: /usr/bin/yes
              args: any
          files:
            read: [/evidence/**]
            write: [/out/**]
          buckets:
            - namespace: cases/*/findings
              operations: [put, get]
        limits:
          cycles: 10
          output_bytes: 100
        """

    func policy() throws -> AgentPolicy {
        try AgentPolicy.parse(Self.policyText, format: .yaml, file: "test.yaml")
    }

    /// What the fake guest saw.
    struct Saw: Sendable {
        var requests: [DoorsMessage] = []
        var written: [UInt8] = []
        var cancelled = false
    }

    /// Resolve as written; ReadFile answered from `file` (as much as the request's length asks);
    /// WriteFile kept; Exec answered with two 60-byte chunks, then, once cancelled, a SIGKILL exit.
    static func fakeGuest(file: [UInt8]) throws -> (DoorsClient, Running<Saw>) {
        try connect { peer in
            var saw = Saw()
            var writing: UInt32?
            while true {
                guard let frame = try? peer.receive() else { return saw }
                let id = frame.requestID
                switch frame.message {
                case .resolve(let path):
                    try peer.send(Frame(requestID: id, .resolved(path: path)))
                case .readFile(let request):
                    saw.requests.append(frame.message)
                    let end = min(file.count, Int(clamping: request.length ?? .max))
                    var frames: [Frame] = stride(from: 0, to: end, by: 64).map {
                        Frame(requestID: id, .fileData(Array(file[$0..<min($0 + 64, end)])))
                    }
                    frames.append(Frame(requestID: id, .fileEnd))
                    try peer.write(try peer.bytes(frames))
                case .writeFile:
                    saw.requests.append(frame.message)
                    writing = id
                case .fileData(let bytes) where id == writing:
                    saw.written += bytes
                case .fileEnd where id == writing:
                    try peer.send(Frame(requestID: id, .ok(count: UInt64(saw.written.count))))
                case .exec:
                    saw.requests.append(frame.message)
                    try peer.send(Frame(requestID: id, .started(pid: 9)),
                                  Frame(requestID: id, .stdoutData([UInt8](repeating: 0x79, count: 60))),
                                  Frame(requestID: id, .stdoutData([UInt8](repeating: 0x79, count: 60))))
                case .cancel:
                    saw.cancelled = true
                    try peer.send(Frame(requestID: id, .exit(ExitReport(status: .signaled(signal: 9)))))
                default:
                    throw FakeError("unexpected \(frame)")
                }
            }
        }
    }

    @Test func outputPastTheLimitIsCutAndTheExecCancelled() throws {
        var (client, guest): (DoorsClient?, Running<Saw>) = try Self.fakeGuest(file: [])
        let audit = try ToolGatewayTests.TemporaryLog()
        var gateway: ToolGateway! = ToolGateway(agent: "tester", client: client!, policy: try policy(), log: audit.log)
        var received: [UInt8] = []
        var thrown: GatewayError?
        do { _ = try gateway.exec(ExecRequest(argv: ["/usr/bin/yes"]), input: .none) { received += $1 } } catch { thrown = error }
        guard case .denied(let decision)? = thrown, case .outputExceeded(limit: 100) = decision.why else {
            Issue.record("expected the output limit, got \(String(describing: thrown))")
            return
        }
        #expect(received.count == 100)
        // The next call gets nothing: the budget is spent.
        var again: GatewayError?
        do { _ = try gateway.readFile(ReadFileRequest(path: "/evidence/a")) { _ in } } catch { again = error }
        client = nil
        gateway = nil
        let saw = try guest.join()
        #expect(saw.cancelled)
        // The read went to the guest asking for one byte (to learn the file is longer than 0).
        guard case .readFile(let request)? = saw.requests.last else {
            Issue.record("the last request was not a read: \(saw.requests)")
            return
        }
        #expect(request.length == 1)
        #expect(again != nil)
        let events = try audit.events()
        guard case .resultDigest(let result)? = events.dropFirst(2).first else {
            Issue.record("no result digest: \(events.map(\.kind))")
            return
        }
        #expect(result.status == 128 + 9 && result.byteCount == 120)
    }

    @Test func aFileReadIsGovernedAndDigested() throws {
        let file = (0..<90).map { UInt8($0) }
        var (client, guest): (DoorsClient?, Running<Saw>) = try Self.fakeGuest(file: file)
        let audit = try ToolGatewayTests.TemporaryLog()
        var gateway: ToolGateway! = ToolGateway(agent: "tester", client: client!, policy: try policy(), log: audit.log)
        var received: [UInt8] = []
        let count = try gateway.readFile(ReadFileRequest(path: "/evidence/report.txt")) { received += $0 }
        #expect(count == 90 && received == file)
        var denied: GatewayError?
        do { _ = try gateway.readFile(ReadFileRequest(path: "/etc/shadow")) { _ in } } catch { denied = error }
        guard case .denied(let decision)? = denied else {
            Issue.record("reading /etc/shadow was not denied: \(String(describing: denied))")
            return
        }
        #expect(decision.rule.id == "tools.files.read")
        client = nil
        gateway = nil
        let saw = try guest.join()
        #expect(saw.requests.count == 1)  // the denied read never reached the guest
        #expect(try audit.events().map(\.kind) == ["tool-request", "decision", "result-digest", "tool-request", "decision"])
    }

    @Test func aFileLongerThanTheOutputLimitIsCutThereAndTheCallDenied() throws {
        let file = [UInt8](repeating: 7, count: 300)
        var (client, guest): (DoorsClient?, Running<Saw>) = try Self.fakeGuest(file: file)
        var gateway: ToolGateway! = ToolGateway(agent: "tester", client: client!, policy: try policy(), log: nil)
        var received: [UInt8] = []
        var thrown: GatewayError?
        do { _ = try gateway.readFile(ReadFileRequest(path: "/evidence/big")) { received += $0 } } catch { thrown = error }
        guard case .denied(let decision)? = thrown, case .outputExceeded = decision.why else {
            Issue.record("expected the output limit, got \(String(describing: thrown))")
            return
        }
        #expect(received.count == 100)
        client = nil
        gateway = nil
        let requests = try guest.join().requests
        guard case .readFile(let request)? = requests.first else {
            Issue.record("the first request was not a read: \(requests)")
            return
        }
        #expect(request.length == 101)
    }

    @Test func aFileWriteIsGovernedAndItsInputDigested() throws {
        var (client, guest): (DoorsClient?, Running<Saw>) = try Self.fakeGuest(file: [])
        let audit = try ToolGatewayTests.TemporaryLog()
        var gateway: ToolGateway! = ToolGateway(agent: "tester", client: client!, policy: try policy(), log: audit.log)
        let source = try TempFile(Array("findings\n".utf8))
        let fd = source.fd
        #expect(try gateway.writeFile(WriteFileRequest(path: "/out/findings.txt"), from: fd) == 9)
        var denied: GatewayError?
        do { _ = try gateway.writeFile(WriteFileRequest(path: "/evidence/../etc/passwd"), from: fd) } catch { denied = error }
        guard case .denied? = denied else {
            Issue.record("a write out of /out was not denied: \(String(describing: denied))")
            return
        }
        client = nil
        gateway = nil
        let saw = try guest.join()
        #expect(saw.written == Array("findings\n".utf8) && saw.requests.count == 1)
        let events = try audit.events()
        guard events.count > 2, case .resultDigest(let result) = events[2] else {
            Issue.record("no result digest third: \(events.map(\.kind))")
            return
        }
        #expect(result.byteCount == 9 && result.status == 0)
    }

    @Test func bucketCallsGoThroughThePolicyAndTheLog() throws {
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try BucketStore(path: dir + "/buckets.db", options: BucketStore.Options(keyPath: dir + "/buckets.key"))
        defer { try? store.close() }
        let log = try AuditLog(path: dir + "/audit.db", options: AuditLog.Options(keyPath: dir + "/audit.key"))
        defer { try? log.close() }
        let session = GovernedSession(agent: "tester", policy: try policy(), log: log, resolver: LexicalResolver())
        let buckets = GovernedBuckets(session: session, store: store)

        let entry = try buckets.put(namespace: "cases/7/findings", key: "host-a", value: Array("clean".utf8), tags: ["triage"])
        #expect(entry.namespace == "cases/7/findings" && entry.size == 5)
        #expect(try buckets.get(namespace: "cases/7/findings", key: "host-a")?.value == Array("clean".utf8))
        var refusals: [String] = []
        for call in [{ _ = try buckets.put(namespace: "intel", key: "k", value: [1]) },
                     { _ = try buckets.query(BucketQuery(namespace: "cases/7/findings")) }] {
            do { try call() } catch let error as GatewayError {
                if case .denied(let decision) = error { refusals.append(decision.rule.id) }
            }
        }
        #expect(refusals == ["tools.buckets", "tools.buckets"])
        // The denied put left the store as it was.
        #expect(try store.query(BucketQuery(namespace: "intel")).isEmpty)

        // The log keeps the value's digest, never its bytes.
        guard case .toolRequest(let request)? = try log.record(at: 0)?.event else {
            Issue.record("entry 0 is not a request")
            return
        }
        let text = String(decoding: request.arguments, as: UTF8.self)
        #expect(request.tool == "bucket-put")
        #expect(text == """
            op=put
            namespace=cases/7/findings
            key=host-a
            value-sha256=\(SHA256.hash(data: Array("clean".utf8)).map { String(format: "%02x", $0) }.joined())
            tags=triage

            """)
        #expect(log.size == 3 + 3 + 2 + 2)
    }

    /// Resolves as written, but holds each call until the test lets it go: a guest slow to
    /// answer Resolve.
    final class SlowResolver: PathResolver, @unchecked Sendable {
        let entered = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        func canonicalPath(_ path: String, followFinalSymlink: Bool) -> String? {
            entered.signal()
            _ = release.wait(timeout: .now() + 10)
            return path
        }
    }

    /// Judging a path may wait on the guest's Resolve; the session's other calls (an agent's
    /// hands calls, from other threads) must not wait behind it, so the policy is asked
    /// outside the session's lock.
    @Test func aCallWaitingOnResolveDoesNotHoldTheSessionsOtherCalls() throws {
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try AuditLog(path: dir + "/audit.db", options: AuditLog.Options(keyPath: dir + "/audit.key"))
        defer { try? log.close() }
        let resolver = SlowResolver()
        let session = GovernedSession(agent: "tester", policy: try policy(), log: log, resolver: resolver)
        let firstDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            _ = try? session.admit(.readFile(path: "/evidence/a"), tool: "read-file", arguments: [])
            firstDone.signal()
        }
        #expect(resolver.entered.wait(timeout: .now() + 5) == .success)
        // While the read waits on Resolve, a bucket call (no paths) is admitted and finished.
        let otherDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            if let id = try? session.admit(.bucket(namespace: "cases/1/findings", operation: .get), tool: "bucket-get", arguments: []) {
                try? session.finish(id, status: 0, result: ResultHasher())
            }
            otherDone.signal()
        }
        #expect(otherDone.wait(timeout: .now() + 5) == .success)
        resolver.release.signal()
        #expect(firstDone.wait(timeout: .now() + 5) == .success)
    }
}
