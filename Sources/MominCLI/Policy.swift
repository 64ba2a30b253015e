import ArgumentParser
import Doors
import Glibc
import Policy

/// `momin policy`: check a policy file, or ask it about one call.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Check a policy file, or ask what it says about one tool call.",
        subcommands: [PolicyCheck.self, PolicyEval.self])
}

/// Loads a policy; an unusable one is bad input (exit 2, FILE:LINE: FIELD: MESSAGE).
private func loadPolicy(_ path: String) throws -> AgentPolicy {
    do {
        return try AgentPolicy.load(path: path)
    } catch {
        throw CLIError.usage(error.description)
    }
}

struct PolicyCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a policy file (.yaml, .yml or .json) and print a one-line summary.",
        discussion: "Exits 0 when the policy is valid, 2 with FILE:LINE: FIELD: MESSAGE when it is not.")

    @Argument(help: "The policy file.") var file: String

    func run() throws {
        let policy = try loadPolicy(file)
        print(summary(policy))
    }

    func summary(_ policy: AgentPolicy) -> String {
        func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }
        let tools = policy.tools
        let limits = policy.limits
        let resources = policy.resources
        return "\(file): agent \(policy.agent), version \(policy.version): "
            + "\(count(tools.exec.count, "exec rule")), \(count(tools.read.count, "read glob")), "
            + "\(count(tools.write.count, "write glob")), \(count(tools.buckets.count, "bucket rule")); "
            + "limits \(limits.cycles) cycles, \(formatDuration(limits.wallTime)) wall time, "
            + "\(formatDuration(limits.callTimeout)) per call, \(formatSize(limits.outputBytes)) output; resources \(count(resources.vcpus, "vCPU")), \(resources.memoryMiB) MiB, "
            + "\(count(resources.gpus, "GPU")), \(count(resources.subAgents, "sub-agent"))"
    }
}

struct PolicyEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Print what a policy decides about one call: allow RULE, or deny RULE: REASON.",
        discussion: """
            Exits 0 on allow, 1 on deny, 2 on bad input. Paths are judged as written (normalised): \
            there is no guest here to resolve symlinks. --exec takes the rest of the command line \
            as argv, so give --env and --cwd before it.
            """)

    @Argument(help: "The policy file.") var file: String
    @Option(help: "An environment entry NAME=VALUE for --exec (repeatable).") var env: [String] = []
    @Option(help: "The working directory for --exec.") var cwd: String?
    @Option(help: "The per-call timeout for --exec, in milliseconds.") var timeoutMs: UInt32?
    @Option(help: "Read a file.") var read: String?
    @Option(help: "Write a file.") var write: String?
    @Option(help: "List a directory.") var list: String?
    @Option(help: "Create a directory (with --parents: and its parents).") var mkdir: String?
    @Flag(help: "With --mkdir: mkdir -p.") var parents = false
    @Option(help: "Remove a path (with --recursive: a whole tree).") var remove: String?
    @Flag(help: "With --remove: rm -r.") var recursive = false
    @Option(help: "A bucket operation, NAMESPACE:OPERATION (put, get or query).") var bucket: String?
    @Option(parsing: .remaining, help: "Run a program: the rest of the line is argv.") var exec: [String] = []

    func run() throws {
        var calls: [ToolCall] = []
        if !exec.isEmpty { calls.append(.exec(ExecRequest(argv: exec, env: env, cwd: cwd, timeoutMilliseconds: timeoutMs))) }
        if let read { calls.append(.readFile(path: read)) }
        if let write { calls.append(.writeFile(path: write)) }
        if let list { calls.append(.list(path: list)) }
        if let mkdir { calls.append(.mkdir(path: mkdir, parents: parents)) }
        if let remove { calls.append(.remove(path: remove, recursive: recursive)) }
        if let bucket {
            guard let colon = bucket.lastIndex(of: ":"), let operation = BucketOperation(rawValue: String(bucket[bucket.index(after: colon)...])) else {
                throw CLIError.usage("--bucket \(bucket): expected NAMESPACE:OPERATION with put, get or query")
            }
            calls.append(.bucket(namespace: String(bucket[..<colon]), operation: operation))
        }
        guard calls.count == 1 else {
            throw CLIError.usage("give exactly one of --exec, --read, --write, --list, --mkdir, --remove, --bucket")
        }
        let policy = try loadPolicy(file)
        let decision = policy.evaluate(calls[0], resolver: LexicalResolver())
        switch decision.verdict {
        case .allow:
            print("allow \(decision.rule)")
        case .deny:
            print("deny \(decision.rule): \(decision.reason)")
            Glibc.exit(1)
        }
    }
}
