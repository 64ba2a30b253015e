import Audit
import Doors
import Foundation
import Gateway
import Glibc
import GuestClient
@testable import GuestClientTestSupport
import Policy
import Synchronization
import Testing

/// A long-lived VM's session, whose calls come from separate processes: the log they share and
/// the limits they count against together.
@Suite struct SharedSessionTests {
    static let limitsText = """
        version: 1
        agent: tester
        limits:
          cycles: 3
          wall_time: 1s
          call_timeout: 1s
          output_bytes: 100
        """

    func limits() throws -> Limits {
        try AgentPolicy.parse(Self.limitsText, format: .yaml, file: "limits.yaml").limits
    }

    @Test func twoWritersSharingALogTakeTurnsAndTheLogVerifies() throws {
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/audit.db"
        let writers = [SharedAuditLog(path: path, keyPath: nil), SharedAuditLog(path: path, keyPath: nil)]
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 2) { writer in
            for call in 0..<25 {
                let id = UInt64(writer * 1000 + call)
                do {
                    try writers[writer].append(batch: [
                        .toolRequest(ToolRequest(requestID: id, agent: "w\(writer)", tool: "exec", arguments: [1])),
                        .decision(Audit.Decision(requestID: id, verdict: .allow, rule: "r", reason: "")),
                    ])
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        let key = try AuditKey.loadOrCreate(path: path + ".key").publicKey
        guard case .intact(let summary) = try AuditVerifier.verify(path: path, publicKey: key, strict: true) else {
            Issue.record("the shared log does not verify")
            return
        }
        #expect(summary.entries == 100)
        #expect(summary.signedHeads == 50)  // each batch closes the log, which signs it
        // Each batch is whole: a request is always followed by its own decision.
        let log = try AuditLog(path: path)
        defer { try? log.close() }
        for index in stride(from: 0, to: 100, by: 2) {
            guard case .toolRequest(let request)? = try log.record(at: UInt64(index))?.event,
                  case .decision(let decision)? = try log.record(at: UInt64(index + 1))?.event else {
                Issue.record("entries \(index), \(index + 1) are not a request and its decision")
                return
            }
            #expect(request.requestID == decision.requestID)
        }
    }

    @Test func aWriterWaitsForTheLogOnlyAsLongAsItWasTold() throws {
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/audit.db"
        let holder = try AuditLog(path: path)
        let event = AuditEvent.lifecycle(.vmStart(vm: "a"))
        #expect { try SharedAuditLog(path: path, keyPath: nil, lockWait: .milliseconds(50)).append(batch: [event]) } throws: { error in
            guard case .busy(let busy) = error as? AuditError else { return false }
            return busy == path
        }
        // Released a little later: a writer told to wait gets its turn.
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(150)) { try? holder.close() }
        try SharedAuditLog(path: path, keyPath: nil, lockWait: .seconds(10)).append(batch: [event])
        let key = try AuditKey.loadOrCreate(path: path + ".key").publicKey
        guard case .intact(let summary) = try AuditVerifier.verify(path: path, publicKey: key) else {
            Issue.record("the log does not verify")
            return
        }
        #expect(summary.entries == 1)
    }

    @Test func persistedLimitsCountCallsFromEveryProcessOfTheSession() throws {
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/limits"
        var relaxed = try limits()
        relaxed.wallTime = .seconds(3600)
        try TreeLimits.create(path: path, root: "vm", limits: relaxed)
        // Two openers stand for two `momin exec` processes.
        let first = TreeLimits.file(path).session("vm", limits: relaxed)
        let second = TreeLimits.file(path).session("vm", limits: relaxed)
        #expect(try first.admitCall().isAllowed)
        #expect(try second.admitCall().isAllowed)
        #expect(try first.admitCall().isAllowed)
        let fourth = try second.admitCall()
        #expect(!fourth.isAllowed && fourth.rule.id == "limits.cycles")
        #expect(try first.recordOutput(bytes: 60).isAllowed)
        #expect(try second.remainingOutputBytes() == 40)
        let over = try second.recordOutput(bytes: 41)
        guard case .outputExceeded(limit: 100) = over.why else {
            Issue.record("expected the output limit, got \(over)")
            return
        }
        // Making it again would reset the count: refused.
        #expect(throws: GatewayError.self) { try TreeLimits.create(path: path, root: "vm", limits: relaxed) }
    }

    /// A long-lived VM's tree: the VM's own calls (each `momin exec`) and its sub-agent's (from
    /// the agent host) count in one usage file, so the VM's limit stops the sub-agent too.
    @Test func aSubAgentsCallsCountInItsVMsUsageFile() throws {
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/limits"
        var root = try limits()
        root.wallTime = .seconds(3600)
        try TreeLimits.create(path: path, root: "vm", limits: root)
        var child = root
        child.wallTime = .seconds(60)
        child.outputBytes = 50
        // Three cycles are all the root has: a child may not declare more, nor all its wall time.
        #expect(try TreeLimits.file(path).join("vm.d", parent: "vm", limits: root)?.contains("its limits.wall_time 3600.0s") == true)
        child.cycles = 4
        #expect(try TreeLimits.file(path).join("vm.d", parent: "vm", limits: child)
                == "its limits.cycles 4 is more than the 3 calls left to its parent vm")
        child.cycles = 2
        #expect(try TreeLimits.file(path).join("vm.c", parent: "vm", limits: child) == nil)
        let sub = TreeLimits.file(path).session("vm.c", limits: child)
        let exec = TreeLimits.file(path).session("vm", limits: root)
        #expect(try sub.admitCall().isAllowed)
        #expect(try exec.admitCall().isAllowed)
        #expect(try exec.admitCall().isAllowed)
        let denied = try sub.admitCall()
        #expect(!denied.isAllowed && denied.rule.id == "limits.cycles@vm")
        #expect(denied.reason == "the limit of 3 tool calls is used up, in the budget of vm, which covers the agents under it")
        // The sub-agent's output is bounded by the least left above it.
        #expect(try sub.remainingOutputBytes() == 50)
        #expect(try exec.recordOutput(bytes: 80).isAllowed)
        #expect(try sub.remainingOutputBytes() == 20)
        let usage = try TreeLimits.file(path).usage()
        #expect(usage.member("vm")?.cycles == 3 && usage.member("vm.c")?.cycles == 1 && usage.member("vm.d") == nil)
        #expect { try TreeLimits.file(path).session("vm.x", limits: child).admitCall() } throws: { error in
            "\(error)".contains("agent vm.x is not in its tree's budget (\(path))")
        }
    }

    @Test func theWallTimeRunsFromTheSessionsStartAcrossProcesses() throws {
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/limits"
        // A session that started 1 ns after boot: far more than its 1 s of wall time ago.
        try Array("momin-limits 2\nagent vm - 1 3 1000000000 100 0 0\n".utf8).write(to: path)
        let decision = try TreeLimits.file(path).session("vm", limits: try limits()).admitCall()
        #expect(!decision.isAllowed && decision.rule.id == "limits.wall_time")
    }

    @Test func aDamagedUsageFileIsAnErrorNamingIt() throws {
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases: [(String, String)] = [
            ("garbage\n", "is not a usage file of this version"),
            ("momin-limits 1\nstarted 5\ncycles 0\noutput 0\n", "is not a usage file of this version"),
            ("momin-limits 2\nagent vm - 5 x 1 1 0 0\n", "line 2: expected 'agent NAME PARENT"),
            ("momin-limits 2\nagent vm - 5 3 1\n", "line 2: expected 'agent NAME PARENT"),
            ("momin-limits 2\n", "does not hold one tree"),
            ("momin-limits 2\nagent vm - 5 3 1 1 0 0\nagent c x 5 3 1 1 0 0\n", "does not hold one tree"),
            // Bounded before it is parsed: a file that grew past 256 KiB is refused whole.
            ("momin-limits 2\n" + String(repeating: "agent vm - 5 3 1 1 0 0\n", count: 12_000), "is larger than 262144 bytes"),
        ]
        for (index, (text, expected)) in cases.enumerated() {
            let path = dir + "/limits\(index)"
            try Array(text.utf8).write(to: path)
            #expect { try TreeLimits.file(path).session("vm", limits: try limits()).admitCall() } throws: { error in
                let description = "\(error)"
                return description.contains(path) && description.contains(expected)
            }
        }
        #expect { try TreeLimits.file(dir + "/absent").session("vm", limits: try limits()).admitCall() } throws: { error in
            "\(error)".contains("cannot open \(dir)/absent")
        }
    }
}

extension Array where Element == UInt8 {
    func write(to path: String) throws {
        try Data(self).write(to: URL(fileURLWithPath: path))
    }
}
