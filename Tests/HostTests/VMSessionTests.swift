import Audit
import Doors
import Gateway
import Glibc
@testable import GuestClientTestSupport
@testable import Host
import MachineConfig
import Merkle
import POSIX
import Testing

/// A whole session against a fake momin-vmm and a fake guest at the VM's vsock socket: booted,
/// one command through the gateway with a policy and an audit log, the VM's hands socket
/// served meanwhile, then torn down with nothing left.
@Suite(.serialized) struct VMSessionTests {
    static let policy = """
        version: 1
        agent: runner
        tools:
          exec:
            - program: /bin/echo
              args: any
        """

    /// Plays the guest at `socketPath` once it can be bound (the launch makes its directory):
    /// Doors on momin-init's port, each exec answered with `hello` and exit 0. Returns at once;
    /// `join` gives the exec requests the guest saw.
    static func fakeGuest(at socketPath: String) -> FakeGuest {
        let guest = FakeGuest()
        try? POSIXThread.detach(name: "fake-guest") {
            let directory = String(socketPath[..<socketPath.lastIndex(of: "/")!])
            _ = eventually(seconds: 30) { access(directory, F_OK) == 0 }
            do {
                let vmm = try FakeVMM(socketPath: socketPath)
                guest.running = vmm.serve { vmm in
                    let peer = try vmm.accept()
                    try peer.handshake(port: guestDoorsPort)
                    var execs: [ExecRequest] = []
                    while let frame = try? peer.receive() {
                        switch frame.message {
                        case .resolve(let path):
                            try peer.send(Frame(requestID: frame.requestID, .resolved(path: path)))
                        case .exec(let request):
                            execs.append(request)
                            try peer.send(Frame(requestID: frame.requestID, .started(pid: 7)),
                                          Frame(requestID: frame.requestID, .stdoutData(Array("hello\n".utf8))),
                                          Frame(requestID: frame.requestID, .exit(ExitReport(status: .exited(code: 0)))))
                        default:
                            throw FakeError("unexpected \(frame.message)")
                        }
                    }
                    return execs
                }
            } catch {
                guest.failure = "\(error)"
            }
            guest.ready.signal()
        }
        return guest
    }

    /// Waits until the VM's fake momin-vmm is up, so that its stop is a clean one.
    static func waitForVMM(of name: String, in registry: VMRegistry, host: TestHost) -> [String]? {
        guard let text = SmallFiles.read(registry.directory(name) + "/pid"), let pid = pid_t(text.trimmingNewline()) else { return nil }
        return host.waitForVMM(pid)
    }

    final class FakeGuest: @unchecked Sendable {
        let ready = Completion()
        var running: Running<[ExecRequest]>?
        var failure: String?

        func join() throws -> [ExecRequest] {
            guard ready.wait(seconds: 60), let running else { throw FakeError(failure ?? "the fake guest did not start") }
            return try running.join()
        }
    }

    @Test func aCommandRunsThroughTheGatewayAndTheLogHoldsTheWholeSession() throws {
        let host = try TestHost()
        let registry = try VMRegistry.open(host.environment)
        let policyPath = host.root + "/runner.yaml"
        try SmallFiles.write(policyPath, Self.policy)
        let auditPath = host.root + "/audit.db"
        let log = try AuditLog(path: auditPath)
        var options = VMSession.Options(name: "runner-1")
        options.jail = .unjailed
        options.timeout = 30
        options.policy = try LoadedPolicy.load(path: policyPath, vcpus: 1, memoryMiB: 256)
        options.auditPath = auditPath
        let guest = Self.fakeGuest(at: registry.socketPath("runner-1"))
        var output: [UInt8] = []
        var handsSocketServed = false
        let end = try VMSession.run(testMachine(), options, log: log, agents: AgentHosting(store: nil), registry: registry,
                                    environment: host.environment) { gateway throws(GatewayError) in
            handsSocketServed = access(registry.hostPortSocket("runner-1", port: HandsCallProtocol.port), F_OK) == 0
            _ = Self.waitForVMM(of: "runner-1", in: registry, host: host)
            return try gateway.exec(ExecRequest(argv: ["/bin/echo", "hi"], env: [], cwd: "/"), input: .none) { _, bytes in output += bytes }
        }
        let report = try end.result.get()
        #expect(report.status == .exited(code: 0))
        #expect(output == Array("hello\n".utf8))
        #expect(end.vmStatus == "exited 0")
        #expect(handsSocketServed)
        let execs = try guest.join()
        #expect(execs.map(\.argv) == [["/bin/echo", "hi"]])

        // Nothing is left running: no VMM, no grant, no hands socket (the directory, with the
        // console log a failed run shows, goes when the process exits).
        #expect(registry.state("runner-1") != .running(pid: 0))
        #expect(access(registry.hostPortSocket("runner-1", port: HandsCallProtocol.port), F_OK) != 0)
        #expect(try HostResources(host.environment).store().read()?.ledger.grant("runner-1") == nil)
        let kinds = try AuditReader.records(path: auditPath).map { $0.event.kind }
        #expect(kinds == ["policy-load", "vm-start", "tool-request", "decision", "result-digest", "vm-stop"])
    }

    @Test func aDeniedCommandNeverReachesTheGuest() throws {
        let host = try TestHost()
        let registry = try VMRegistry.open(host.environment)
        let policyPath = host.root + "/runner.yaml"
        try SmallFiles.write(policyPath, Self.policy)
        var options = VMSession.Options(name: "runner-2")
        options.jail = .unjailed
        options.timeout = 30
        options.policy = try LoadedPolicy.load(path: policyPath, vcpus: 1, memoryMiB: 256)
        let guest = Self.fakeGuest(at: registry.socketPath("runner-2"))
        let end = try VMSession.run(testMachine(), options, log: nil, agents: nil, registry: registry,
                                    environment: host.environment) { gateway throws(GatewayError) in
            try gateway.exec(ExecRequest(argv: ["/bin/cat", "/etc/shadow"], env: [], cwd: "/"), input: .none) { _, _ in }
        }
        guard case .failure(.denied(let decision)) = end.result else {
            Issue.record("expected a denial, got \(end.result)")
            return
        }
        #expect(!decision.isAllowed)
        #expect(try guest.join().isEmpty)
    }

    /// A run the host has no room for never boots, and its log says so, with why, signed at once.
    @Test func aRunTheHostHasNoRoomForIsLoggedWithItsReason() throws {
        let host = try TestHost()
        let registry = try VMRegistry.open(host.environment)
        let auditPath = host.root + "/audit.db"
        let log = try AuditLog(path: auditPath)
        var options = VMSession.Options(name: "big-1")
        options.jail = .unjailed
        options.auditPath = auditPath
        var reason = ""
        do {
            _ = try VMSession.run(testMachine(vcpus: 8), options, log: log, agents: nil, registry: registry,
                                  environment: host.environment) { _ throws(GatewayError) in Issue.record("the run went on") }
            Issue.record("8 vCPUs fit on a 4-CPU host")
        } catch {
            #expect(error.kind == .noRoom)
            #expect(error.message.hasPrefix("no room for VM big-1 on this host: "))
            reason = error.message
        }
        #expect(log.lastHead?.treeSize == 1)
        try log.close()
        let records = try AuditReader.records(path: auditPath)
        #expect(records.map(\.event) == [.lifecycle(.runRefused(vm: "big-1", reason: reason))])
        #expect(registry.state("big-1") == .absent)
    }

    /// A refusal the log cannot take is still reported, as what it was, saying the log failed too.
    @Test func aRefusalTheLogCannotTakeSaysBoth() throws {
        let host = try TestHost()
        let missing = host.root + "/no/such/dir/audit.db"
        let reported = RefusedRun.record(.noRoom("no room for VM v on this host: 0 CPUs free"), vm: "v", auditPath: missing,
                                         options: AuditLog.Options())
        #expect(reported.kind == .noRoom)
        #expect(reported.message.hasPrefix("no room for VM v on this host: 0 CPUs free; the audit log could not record the refusal: "))
        #expect(reported.message.contains(missing))
        // One that can: the refusal as it was, after what came before it, in one signed transaction.
        let auditPath = host.root + "/audit.db"
        let refusal = HostError.badInput("--vcpus 4 is over the policy's cap of 2 (resources.vcpus)")
        let loaded: Lifecycle = .policyLoad(source: "p.yaml", sha256: Merkle.emptyRoot)
        #expect(RefusedRun.record(refusal, vm: "w-1", before: [loaded], auditPath: auditPath, options: AuditLog.Options()) == refusal)
        #expect(try AuditReader.records(path: auditPath).map(\.event) == [.lifecycle(loaded), .lifecycle(.runRefused(vm: "w-1", reason: refusal.message))])
        #expect(try AuditReader.latestHead(path: auditPath)?.treeSize == 2)
    }
}
