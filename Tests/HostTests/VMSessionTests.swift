import Audit
import Doors
import Gateway
import Glibc
@testable import GuestClientTestSupport
@testable import Host
import MachineConfig
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
}
