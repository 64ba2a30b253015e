import Doors

/// One tool call as the policy sees it (exec and files made in the guest for an agent, or an agent's hands call).
public enum ToolCall: Sendable, Hashable {
    case exec(ExecRequest)
    case readFile(path: String)
    case writeFile(path: String)
    /// stat(2) when `followSymlinks`, lstat(2) otherwise.
    case stat(path: String, followSymlinks: Bool)
    case list(path: String)
    case mkdir(path: String, parents: Bool)
    case remove(path: String, recursive: Bool)
    case bucket(namespace: String, operation: BucketOperation)
    /// A message to agent `to` on a door.
    case doorSend(door: String, to: String)
    /// Taking a message from agent `from` off a door.
    case doorReceive(door: String, from: String)
    /// Waiting for a message on a door, from any agent the policy lets it receive from there
    /// (each message was checked against both sides' policies when it was sent).
    case doorListen(door: String)
    /// Starting a sub-agent (its own microVM); the resource ledger bounds how many.
    case spawn
    /// Attaching host file `path` to the agent's VM as a disk, read-only or not (judged on
    /// the host, with the host's own resolver, before boot).
    case attachDisk(path: String, writable: Bool)
    /// Opening a connection for the agent: a `tls` CONNECT tunnel, or an `http` one whose
    /// requests are each judged as `httpRequest`. `host` is as the agent named it (a name or an
    /// address literal); `resolved` is what the host's own resolver answered for a name (for an
    /// address literal: empty, or that address). The host connects only to the addresses an
    /// allowed decision returns (`JudgedPaths.addresses`).
    case connect(host: String, port: UInt16, scheme: EgressScheme, resolved: [IPAddress])
    /// One plain HTTP request: `path` is the request target's path without its query.
    case httpRequest(host: String, port: UInt16, method: String, path: String, resolved: [IPAddress])
    /// One model call through the host's Brain relay, asking for at most `maxTokens`.
    case brain(model: String, maxTokens: Int)
    /// One package an install would bring in (the one asked for, or a dependency), by name and
    /// the exact version resolved.
    /// An empty `version` judges the name alone: what the host asks before it reads a project's
    /// page, and all an apt package is judged by.
    case installPackage(ecosystem: PackageEcosystem, name: String, version: String)
    /// An install request as a whole (`hands install`): allowed where the policy has a section
    /// for the ecosystem; each package it brings in is judged on its own.
    case installRequest(ecosystem: PackageEcosystem)

    /// The call a Doors request makes; nil for frames that are not requests.
    public init?(_ message: DoorsMessage) {
        switch message {
        case .exec(let request): self = .exec(request)
        case .readFile(let request): self = .readFile(path: request.path)
        case .writeFile(let request): self = .writeFile(path: request.path)
        case .stat(let request): self = .stat(path: request.path, followSymlinks: request.followSymlinks)
        case .list(let path): self = .list(path: path)
        case .mkdir(let request): self = .mkdir(path: request.path, parents: request.parents)
        case .remove(let request): self = .remove(path: request.path, recursive: request.recursive)
        default: return nil
        }
    }
}

/// The paths an allowed call was judged by, as the guest resolved them (every symlink
/// followed): what the guest must be sent, to walk without following any (Doors version 2).
public enum JudgedPaths: Sendable, Equatable {
    /// A file call's path.
    case file(String)
    /// An exec's program and working directory.
    case exec(program: String, cwd: String)
    /// A connect's or HTTP request's addresses, all judged: the only ones to connect to.
    case addresses([IPAddress])
}

/// The evaluator's answer: allow or deny, the rule that decided, and why.
public struct Decision: Sendable, Equatable, CustomStringConvertible {
    public enum Verdict: Sendable, Equatable { case allow, deny }

    public let verdict: Verdict
    public let rule: RuleRef
    public let why: Reason
    /// For an allowed file or exec call: the resolved paths the rules matched.
    public let judged: JudgedPaths?

    public var isAllowed: Bool { verdict == .allow }
    /// A sentence for people and logs.
    public var reason: String { why.description }

    init(verdict: Verdict, rule: RuleRef, why: Reason, judged: JudgedPaths? = nil) {
        self.verdict = verdict
        self.rule = rule
        self.why = why
        self.judged = judged
    }

    public static func allow(_ rule: RuleRef, judged: JudgedPaths? = nil) -> Decision {
        Decision(verdict: .allow, rule: rule, why: .allowed, judged: judged)
    }
    public static func deny(_ rule: RuleRef, _ why: Reason) -> Decision { Decision(verdict: .deny, rule: rule, why: why) }

    /// A denial decided outside this policy's rules, by the host that serves the call: a
    /// message over a door's size limit, a sub-agent's policy that is wider than its parent's.
    public static func refused(_ rule: RuleRef, because why: String) -> Decision { .deny(rule, .refused(why)) }

    /// The other side of a door said no: `decision` is the peer's own, and the rule named is
    /// the peer's, prefixed with its name ("triage.a: tools.doors").
    public static func refused(byPeer peer: String, _ decision: Decision) -> Decision {
        .deny(RuleRef("\(peer): \(decision.rule.id)", line: decision.rule.line), .peerRefused(peer: peer, decision.reason))
    }

    /// "allow tools.exec[0]" or "deny tools.exec: /bin/rm is not among the allowed programs".
    public var description: String {
        switch verdict {
        case .allow: "allow \(rule.id)"
        case .deny: "deny \(rule.id): \(reason)"
        }
    }
}

/// Why a call was decided as it was. Kept as data so an allow costs no string formatting.
public enum Reason: Sendable, Equatable, CustomStringConvertible {
    case allowed
    case malformedCall(String)
    /// A path (what it is, e.g. "path", "argv[0]", "cwd") refused before any rule.
    case badPath(what: String, path: String, problem: PathNormalization.Problem)
    case unresolvable(path: String)
    /// An exec path the guest's kernel would walk as written, so it must be normal already.
    case notNormal(what: String, path: String, normal: String)
    /// Nothing of this kind is allowed at all ("exec", "file reads", ...).
    case nothingAllowed(String)
    case pathNotAllowed(path: String, access: String)
    case resolvesOutside(path: String, canonical: String, access: String)
    case subtreeNotAllowed(path: String)
    case parentNotAllowed(path: String, parent: String)
    case programNotAllowed(String)
    case programResolvesOutside(program: String, canonical: String)
    case argumentCount(count: Int, allowed: String)
    case argumentNotAllowed(index: Int, value: String)
    case environmentMalformed(String)
    case environmentNotAllowed(String)
    case cwdNotAllowed(String)
    case timeoutTooLong(requestedMilliseconds: UInt32, limit: Duration)
    case namespaceInvalid(String)
    case bucketNotAllowed(namespace: String, operation: BucketOperation)
    case doorNotAllowed(door: String, peer: String, direction: DoorDirection)
    case subAgentsNotAllowed
    case diskNotAllowed(path: String, writable: Bool)
    /// A destination host refused before any rule: a form resolvers may read differently.
    case badHost(host: String, problem: HostName.Problem)
    case hostNotAllowed(host: String)
    case portNotAllowed(host: String, port: UInt16)
    case schemeNotAllowed(host: String, scheme: EgressScheme)
    case methodNotAllowed(host: String, method: String)
    case requestPathNotAllowed(host: String, path: String)
    case badRequestPath(path: String, problem: String)
    case unresolved(host: String)
    /// `address` (what `host` resolves to, or `host` itself) is special and no rule names it.
    case specialAddress(host: String, address: IPAddress, kind: AddressClass)
    case modelNotAllowed(String)
    case tokensOverCallLimit(requested: Int, limit: Int)
    case packageNotAllowed(ecosystem: PackageEcosystem, name: String)
    case packageVersionNotAllowed(name: String, version: String, allowed: String)
    /// Refused by the host for a reason outside the rules (`Decision.refused(_:because:)`).
    case refused(String)
    /// Refused by the other side's policy.
    case peerRefused(peer: String, String)
    case cyclesExhausted(limit: Int)
    case wallTimeExceeded(limit: Duration)
    case outputExceeded(limit: Int)
    /// A limit of an agent above this one ran out: its budget covers every agent under it.
    indirect case ancestorLimit(ancestor: String, Reason)

    /// An output limit ran out, the agent's own or an ancestor's.
    public var isOutputLimit: Bool {
        switch self {
        case .outputExceeded: true
        case .ancestorLimit(_, let reason): reason.isOutputLimit
        default: false
        }
    }

    public var description: String {
        switch self {
        case .allowed: "allowed"
        case .malformedCall(let what): what
        case .badPath(let what, let path, let problem): "\(what) \(quoted(path)) \(problem)"
        case .notNormal(let what, let path, let normal):
            "\(what) \(quoted(path)) must be written in normal form (\(normal)): the guest walks \"..\" through symlinks"
        case .unresolvable(let path): "\(path) cannot be resolved (symlink loop, missing directory or error)"
        case .nothingAllowed(let what): "the policy allows no \(what)"
        case .pathNotAllowed(let path, let access): "\(path) is not \(access)"
        case .resolvesOutside(let path, let canonical, let access): "\(path) resolves to \(canonical), which is not \(access)"
        case .subtreeNotAllowed(let path): "a recursive remove of \(path) needs the whole tree below it writable (a rule ending in /**)"
        case .parentNotAllowed(let path, let parent): "mkdir -p \(path) may create \(parent), which is not writable"
        case .programNotAllowed(let program): "\(program) is not among the allowed programs"
        case .programResolvesOutside(let program, let canonical): "\(program) resolves to \(canonical), which is not among the allowed programs"
        case .argumentCount(let count, let allowed): "\(count) argument\(count == 1 ? "" : "s") given, \(allowed) allowed"
        case .argumentNotAllowed(let index, let value): "argument \(index) \(quoted(value)) matches no allowed pattern"
        case .environmentMalformed(let entry): "environment entry \(quoted(entry)) is not NAME=VALUE"
        case .environmentNotAllowed(let entry): "environment variable \(quoted(entry)) is not allowed"
        case .cwdNotAllowed(let cwd): "working directory \(cwd) is not allowed"
        case .timeoutTooLong(let ms, let limit): "timeout \(ms) ms is longer than the per-call limit of \(formatDuration(limit))"
        case .namespaceInvalid(let namespace): "bucket namespace \(quoted(namespace)) is malformed"
        case .bucketNotAllowed(let namespace, let operation): "\(operation.rawValue) on bucket namespace \(quoted(namespace)) is not allowed"
        case .doorNotAllowed(let door, let peer, .send): "sending on door \(quoted(door)) to \(quoted(peer)) is not allowed"
        case .doorNotAllowed(let door, let peer, .receive): "receiving on door \(quoted(door)) from \(quoted(peer)) is not allowed"
        case .refused(let why): why
        case .peerRefused(let peer, let why): "the policy of \(peer) refuses: \(why)"
        case .subAgentsNotAllowed: "the policy allows no sub-agents (resources.sub_agents is 0)"
        case .diskNotAllowed(let path, let writable):
            "\(path) is not within any of resources.disks\(writable ? " with mode rw" : "")"
        case .badHost(let host, let problem): "host \(quoted(host)) \(problem)"
        case .hostNotAllowed(let host): "no network.egress rule allows host \(host)"
        case .portNotAllowed(let host, let port): "port \(port) of \(host) is not allowed"
        case .schemeNotAllowed(let host, .tls): "a tls tunnel to \(host) is not allowed"
        case .schemeNotAllowed(let host, .http): "plain http to \(host) is not allowed"
        case .methodNotAllowed(let host, let method): "method \(quoted(method)) to \(host) is not allowed"
        case .requestPathNotAllowed(let host, let path): "path \(quoted(path)) on \(host) is not allowed"
        case .badRequestPath(let path, let problem): "request path \(quoted(path)) \(problem)"
        case .unresolved(let host): "\(host) resolved to no address"
        case .specialAddress(let host, let address, let kind) where host == address.description:
            "\(address) is \(kind), which no rule names"
        case .specialAddress(let host, let address, let kind): "\(host) resolves to \(address), \(kind), which no rule names"
        case .modelNotAllowed(let model): "model \(quoted(model)) is not among brain.models"
        case .tokensOverCallLimit(let requested, let limit): "\(requested) tokens asked for, at most \(limit) per call allowed"
        case .packageNotAllowed(let ecosystem, let name): "\(ecosystem.rawValue) package \(quoted(name)) is not among packages.\(ecosystem.rawValue).allow"
        case .packageVersionNotAllowed(let name, let version, let allowed): "\(name) \(version) is not among the versions allowed (\(allowed))"
        case .cyclesExhausted(let limit): "the limit of \(limit) tool calls is used up"
        case .wallTimeExceeded(let limit): "the wall time limit of \(formatDuration(limit)) has passed"
        case .outputExceeded(let limit): "the output limit of \(limit) bytes is used up"
        case .ancestorLimit(let ancestor, let reason): "\(reason), in the budget of \(ancestor), which covers the agents under it"
        }
    }
}

/// A string as it would be written in a policy: in double quotes, with \" \\ and control
/// characters escaped; also a JSON string literal (RFC 8259 §7).
public func quoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20 || scalar.value == 0x7F:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// "90s", "10m", "1h", "250ms": the largest unit that divides the duration.
public func formatDuration(_ duration: Duration) -> String {
    let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    if ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
    if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
    if ms % 1000 == 0 { return "\(ms / 1000)s" }
    return "\(ms)ms"
}

/// "16MiB", "512KiB", "1000B": the largest binary unit that divides the size.
public func formatSize(_ bytes: Int) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] where bytes >= 1 << shift && bytes % (1 << shift) == 0 {
        return "\(bytes >> shift)\(unit)"
    }
    return "\(bytes)B"
}
