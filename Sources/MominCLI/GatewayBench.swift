import ArgumentParser
import Audit
import Doors
import Gateway
import Glibc
import Policy

/// `momin bench-gateway`: the governance cost per tool call (Scripts/bench/gateway).
struct GatewayBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-gateway", abstract: "Time the tool gateway's policy and audit work per call.",
        shouldDisplay: false)

    @Option(help: "A policy that allows the benchmark's call (its cycle limit must allow --calls).") var policy: String
    @Option(help: "The program, then its arguments, of the call to judge (comma-separated).") var call: String
    @Option(help: "The call's working directory.") var cwd: String = "/"
    @Option(help: "Calls per round.") var calls: Int = 20_000
    @Option(help: "A directory for the rounds' audit logs (made if missing).") var directory: String

    func run() throws {
        guard calls > 0 else { throw CLIError.usage("--calls must be at least 1") }
        let agentPolicy: AgentPolicy
        do { agentPolicy = try AgentPolicy.load(path: policy) } catch { throw CLIError.usage(error.description) }
        mkdir(directory, 0o700)
        let argv = call.split(separator: ",").map(String.init)
        let request = ExecRequest(argv: argv, env: [], cwd: cwd)
        let figures = try GatewayBenchmark.run(policy: agentPolicy, call: request, calls: calls) { name in
            let path = directory + "/" + name + ".db"
            for suffix in ["", "-wal", "-shm", ".key", ".key.pub"] { unlink(path + suffix) }
            return try AuditLog(path: path)
        }
        func line(_ name: String, _ value: Double) { print("\(name): \(String(format: "%.2f", value))") }
        print("gateway-calls-per-round: \(figures.calls)")
        line("policy-only-us-per-call", figures.policyOnly / 1000)
        line("audit-only-us-per-call", figures.auditOnly / 1000)
        line("policy-and-audit-us-per-call", figures.both / 1000)
        line("audit-overhead-us-per-call", (figures.both - figures.policyOnly) / 1000)
        line("audited-calls-per-second", 1e9 / figures.both)
    }
}
