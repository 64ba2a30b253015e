import ArgumentParser
import Doors
import Egress
import Glibc
import HTTPWire
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
            + "\(count(resources.gpus, "GPU")), \(count(resources.subAgents, "sub-agent"))" + packages(policy.packages)
    }

    /// "; packages pip 3 rules, apt 2 rules", when the policy allows any.
    func packages(_ packages: Packages?) -> String {
        let sections = [packages?.pip.map { ("pip", $0.allow.count) }, packages?.apt.map { ("apt", $0.allow.count) }].compactMap { $0 }
        guard !sections.isEmpty else { return "" }
        return "; packages " + sections.map { "\($0.0) \($0.1) rule\($0.1 == 1 ? "" : "s")" }.joined(separator: ", ")
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
    @Option(help: ArgumentHelp("A TLS tunnel, as the proxy's CONNECT asks for it.", valueName: "host:port")) var connect: String?
    @Option(help: ArgumentHelp("A plain HTTP request to this URL (http://host[:port]/path).", valueName: "url")) var http: String?
    @Option(help: "With --http: the request's method.") var method = "GET"
    @Option(help: ArgumentHelp("With --connect or --http: an address the name resolves to (repeatable); without it, a name some rule allows is looked up here, as the relay would.", valueName: "address"))
    var resolved: [String] = []
    @Option(help: ArgumentHelp("A Brain call for this model.", valueName: "model")) var brain: String?
    @Option(help: "With --brain: the tokens the call asks for at most.") var maxTokens = 1024
    @Option(help: ArgumentHelp("One package an install would bring in, as pip:NAME==VERSION or apt:NAME.", valueName: "package"))
    var install: String?
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
        var network: (host: String, call: ([IPAddress]) -> ToolCall)?
        if let connect {
            guard case .success(.authority(let host, let port)) = RequestHeadParser.authorityTarget(connect) else {
                throw CLIError.usage("--connect \(connect): expected host:port (a name, an address, or [IPv6], and a port 1-65535)")
            }
            network = (host, { .connect(host: host, port: port, scheme: .tls, resolved: $0) })
        }
        if let http {
            let target: RequestTarget
            switch RequestHeadParser.absoluteTarget(http) {
            case .success(let parsed): target = parsed
            case .failure(let error): throw CLIError.usage("--http \(http): \(error)")
            }
            guard case .absolute(let host, let port, let pathAndQuery) = target else { throw CLIError.usage("--http \(http): expected http://host/path") }
            let path = String(pathAndQuery.prefix { $0 != "?" })
            network = (host, { [method] in .httpRequest(host: host, port: port, method: method, path: path, resolved: $0) })
        }
        if let network { calls.append(network.call([])) }
        if let brain { calls.append(.brain(model: brain, maxTokens: maxTokens)) }
        if let install { calls.append(try Self.installCall(install)) }
        guard calls.count == 1 else {
            throw CLIError.usage("give exactly one of --exec, --read, --write, --list, --mkdir, --remove, --bucket, --connect, --http, --brain, --install")
        }
        let policy = try loadPolicy(file)
        var call = calls[0]
        var lookupProblem: String?
        if let network {
            var addresses: [IPAddress] = []
            for text in resolved {
                guard case .success(let address) = IPAddress.parse(text) else { throw CLIError.usage("--resolved \(text): not an IPv4 or IPv6 address") }
                addresses.append(address)
            }
            if resolved.isEmpty {
                (addresses, lookupProblem) = EgressLookup.addresses(for: network.host, call: network.call, policy: policy, resolver: SystemResolver())
            }
            call = network.call(addresses)
        }
        let decision = policy.evaluate(call, resolver: LexicalResolver())
        switch decision.verdict {
        case .allow:
            if case .addresses(let addresses)? = decision.judged {
                print("allow \(decision.rule): connect to \(addresses.map(\.description).joined(separator: ", "))")
            } else {
                print("allow \(decision.rule)")
            }
        case .deny:
            print("deny \(decision.rule): \(decision.reason)" + (lookupProblem.map { " (looking it up: \($0))" } ?? ""))
            Glibc.exit(1)
        }
    }
}

extension PolicyEval {
    /// `pip:NAME==VERSION` (a pip package is judged at the version the host resolved) or
    /// `apt:NAME`.
    static func installCall(_ text: String) throws -> ToolCall {
        guard let colon = text.firstIndex(of: ":"), let ecosystem = PackageEcosystem(rawValue: String(text[..<colon])) else {
            throw CLIError.usage("--install \(text): expected pip:NAME==VERSION or apt:NAME")
        }
        let rest = text[text.index(after: colon)...]
        switch ecosystem {
        case .pip:
            guard let equals = rest.range(of: "=="), !rest[..<equals.lowerBound].isEmpty, !rest[equals.upperBound...].isEmpty else {
                throw CLIError.usage("--install \(text): a pip package is judged at one version: pip:NAME==VERSION")
            }
            return .installPackage(ecosystem: .pip, name: String(rest[..<equals.lowerBound]), version: String(rest[equals.upperBound...]))
        case .apt:
            guard !rest.isEmpty else { throw CLIError.usage("--install \(text): expected apt:NAME") }
            return .installPackage(ecosystem: .apt, name: String(rest), version: "")
        }
    }
}
