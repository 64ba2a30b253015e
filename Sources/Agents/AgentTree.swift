import Buckets
import Crypto
import Doors
import Gateway
import Merkle
import Policy
import POSIX

/// One agent as the host sees it: a VM with its governed session (the one its commands count
/// against too), where it stands in the tree, and, for a sub-agent, how its command ended.
public final class Agent: @unchecked Sendable {
    public let name: String
    public let parent: String?
    public let session: GovernedSession
    public var policy: AgentPolicy? { session.policy }
    var listener: HandsListener?
    /// Guarded by the tree's monitor.
    var outcome: ChildOutcome?
    var stopping: String?

    public init(name: String, parent: String?, session: GovernedSession) {
        self.name = name
        self.parent = parent
        self.session = session
    }

    /// 1 for a top-level VM, 2 for its sub-agents, ...
    public var depth: Int { name.split(separator: ".").count }
}

/// How a sub-agent's command ended, with the tail of what it wrote.
public struct ChildOutcome: Sendable, Equatable {
    public enum Status: Sendable, Equatable {
        case exited(Int)
        case signaled(Int)
        /// The command did not run to its end: denied, stopped, or its VM failed.
        case failed(HandsFailure, String)
    }
    public var status: Status
    public var stdout: [UInt8] = []
    public var stderr: [UInt8] = []
}

/// A sub-agent to boot, checked: its policy no wider than its parent's and its machine within
/// its own policy's caps.
public struct SpawnPlan: Sendable {
    public let name: String
    public let parent: String
    public let policy: AgentPolicy
    public let policySource: [UInt8]
    public let vcpus: Int
    public let memoryMiB: Int
    public let argv: [String]
    public let env: [String]
}

/// Why a sub-agent's VM did not come up.
public enum SpawnRefusal: Error, CustomStringConvertible {
    /// The resource ledger refused: the parent's budget, the fan-out or the depth limit.
    case noRoom(String)
    case failed(String)

    public var description: String {
        switch self {
        case .noRoom(let why), .failed(let why): why
        }
    }
}

/// What boots and stops sub-agents' VMs: momin's launch sequence (grant, jail, VMM, Doors).
public protocol SubAgentLauncher: AnyObject, Sendable {
    /// Boots the VM, its grant carved from the parent's, and returns the gateway for its
    /// session (sharing the tree's log and request numbers) and the path its hands calls arrive at.
    func boot(_ plan: SpawnPlan) throws(SpawnRefusal) -> (gateway: ToolGateway, handsSocket: String)
    /// Stops the VM and frees what it held; returns once its VMM is gone.
    func halt(_ name: String, reason: String)
}

/// The agents of one `momin run`: the root VM and the sub-agents started from inside it, and
/// everything their hands calls reach: buckets, doors between them, spawn, wait and stop.
/// Every call is judged and logged by the calling agent's session before it has any effect.
public final class AgentTree: @unchecked Sendable {
    public let broker = DoorBroker()
    public let requestIDs: RequestNumbers
    /// The tail of a sub-agent's stdout and stderr kept for `hands wait`.
    public static let outputKept = 64 << 10
    /// Sub-agent names under their parent: what a registry name can hold.
    static let maxNameLength = 64

    private let monitor = Monitor()
    private var agents: [String: Agent] = [:]
    /// Sub-agents whose VMs are booting, and whether the tree has been shut down.
    private var booting: Set<String> = []
    private var closed = false
    private let store: BucketStore?
    private let launcher: any SubAgentLauncher

    public init(store: BucketStore?, launcher: any SubAgentLauncher, requestIDs: RequestNumbers) {
        self.store = store
        self.launcher = launcher
        self.requestIDs = requestIDs
    }

    /// Adds the top-level agent and serves its hands calls at `handsSocket`.
    public func addRoot(_ agent: Agent, handsSocket: String) throws(AgentError) {
        try add(agent, handsSocket: handsSocket)
    }

    private func add(_ agent: Agent, handsSocket: String) throws(AgentError) {
        let name = agent.name
        let listener = try HandsListener(path: handsSocket) { [weak self] call, caller in
            guard let self else { return HandsAnswer(.failed(.failed, "the host is shutting down")) }
            return self.answer(call, from: name, caller: caller)
        }
        agent.listener = listener
        broker.open(agent: name)
        monitor.holding { agents[name] = agent }
    }

    public func agent(_ name: String) -> Agent? { monitor.holding { agents[name] } }

    /// Stops every sub-agent (deepest first) and the root's listener: the run is over. A spawn
    /// still booting is stopped too, and waited for (up to 30 s), so no VM outlives the run.
    public func shutDown(root: String, reason: String) {
        let inFlight: Set<String> = monitor.holding {
            closed = true
            return booting
        }
        for name in inFlight { launcher.halt(name, reason: reason) }
        let deadline = MonotonicClock.deadline(milliseconds: 30_000)
        monitor.holding { _ = monitor.wait(until: deadline) { booting.isEmpty } }
        for child in children(of: root) { stopSubtree(child.name, reason: reason) }
        if let root = agent(root) {
            root.listener?.stop()
            broker.close(agent: root.name)
        }
    }

    // MARK: Calls

    /// Answers one hands call from `caller`, made in-process; see `answer`.
    public func handle(_ call: HandsCall, from caller: String) -> HandsReply {
        answer(call, from: caller, caller: .inProcess).reply
    }

    /// Answers one hands call from agent `name`; what it did is in the log before the reply.
    /// A call that blocks stops waiting, having taken nothing, when `caller` hangs up.
    public func answer(_ call: HandsCall, from name: String, caller: HandsCaller) -> HandsAnswer {
        guard let agent = agent(name) else { return HandsAnswer(.failed(.failed, "agent \(name) is not running")) }
        do {
            switch call {
            case .doorSend(let door, let to, let message, let timeout):
                return HandsAnswer(try send(from: agent, door: door, to: to, message: message, timeout: timeout, caller: caller))
            case .doorReceive(let door, let timeout):
                return try receive(by: agent, door: door, timeout: timeout, caller: caller)
            case .wait(let target, let timeout):
                return HandsAnswer(try wait(for: target, by: agent, timeout: timeout, caller: caller))
            default:
                return HandsAnswer(try answerAtOnce(call, from: agent))
            }
        } catch {
            return HandsAnswer(Self.reply(for: error))
        }
    }

    /// The calls that never wait.
    private func answerAtOnce(_ call: HandsCall, from agent: Agent) throws(GatewayError) -> HandsReply {
        switch call {
        case .whoami:
            return .ok(fields: [agent.name, agent.parent ?? ""], data: [])
        case .bucketPut(let namespace, let key, let value):
            guard let buckets = buckets(for: agent) else { return Self.noStore }
            _ = try buckets.put(namespace: namespace, key: key, value: value)
            return .ok(fields: [], data: [])
        case .bucketGet(let namespace, let key):
            guard let buckets = buckets(for: agent) else { return Self.noStore }
            guard let found = try buckets.get(namespace: namespace, key: key) else {
                return .failed(.notFound, "no key \(key) in bucket namespace \(namespace)")
            }
            return .ok(fields: [], data: found.value)
        case .bucketQuery(let namespace, let prefix):
            guard let buckets = buckets(for: agent) else { return Self.noStore }
            let entries = try buckets.query(BucketQuery(namespace: namespace, keyPrefix: prefix.isEmpty ? nil : prefix, latestOnly: true))
            return .ok(fields: entries.map { "\($0.key)\t\($0.size)\t\($0.contentHash)" }, data: [])
        case .spawn(let request):
            return try spawn(request, parent: agent)
        case .stop(let name):
            return try stop(name, by: agent)
        case .doorSend, .doorReceive, .wait:
            return .failed(.failed, "\(call.kind) waits and is answered elsewhere")
        }
    }

    /// A bucket call where the run was given no store: nothing to judge or log, as no call
    /// could have an effect.
    static let noStore = HandsReply.failed(.failed, "this run has no bucket store (momin run or momin start --buckets DB)")

    static func reply(for error: GatewayError) -> HandsReply {
        switch error {
        case .denied: .failed(.denied, error.description)
        case .bucket(.invalid): .failed(.invalid, error.description)
        default: .failed(.failed, error.description)
        }
    }

    private func buckets(for agent: Agent) -> GovernedBuckets? {
        store.map { GovernedBuckets(session: agent.session, store: $0) }
    }

    // MARK: Doors

    private func send(from sender: Agent, door: String, to: String, message: [UInt8], timeout: UInt32,
                      caller: HandsCaller) throws(GatewayError) -> HandsReply {
        let recipient = agent(to)
        // The door's terms: the smaller size limit of the two sides, the recipient's depth,
        // content logged when either side asks for it.
        let sendRule = sender.policy?.doorRule(door: door, sendingTo: to)
        let receiveRule = recipient?.policy?.doorRule(door: door, receivingFrom: sender.name)
        let limit = min(sendRule?.maxMessageBytes ?? HandsCallProtocol.maxData, receiveRule?.maxMessageBytes ?? HandsCallProtocol.maxData)
        let depth = receiveRule?.queueDepth ?? DoorRule.defaultQueueDepth
        let logContent = (sendRule?.logContent ?? false) || (receiveRule?.logContent ?? false)
        var fields = ["door=\(door)", "from=\(sender.name)", "to=\(to)", "size=\(message.count)", "message-sha256=\(Self.sha256(message))"]
        if logContent { fields.append("message=\(Self.escaped(message))") }
        let id = try sender.session.admit(.doorSend(door: door, to: to), tool: "door-send", arguments: Self.text(fields)) {
            if let recipient, let policy = recipient.policy {
                let verdict = policy.evaluate(.doorReceive(door: door, from: sender.name), resolver: NoGuestPaths())
                if !verdict.isAllowed { return Decision.refused(byPeer: recipient.name, verdict) }
            }
            if message.count > limit {
                return Decision.refused(RuleRef("tools.doors", line: nil),
                                        because: "a \(message.count)-byte message is over door \(door)'s limit of \(limit) bytes")
            }
            return nil
        }
        var result = ResultHasher()
        let sequence: UInt64
        do {
            sequence = try broker.send(door: door, from: sender.name, to: to, bytes: message, depth: depth, timeoutMilliseconds: timeout,
                                       abandoned: { caller.hasHungUp })
        } catch {
            try sender.session.finish(id, status: -1, result: result, countsAsOutput: false)
            switch error {
            case .recipientGone: return .failed(.notFound, "door \(door): \(error)")
            case .queueFull, .nothingArrived: return .failed(.timedOut, error.description)
            case .abandoned: return .failed(.failed, error.description)
            }
        }
        result.add(stream: 1, Array("\(sequence)".utf8))
        try sender.session.finish(id, status: 0, result: result, countsAsOutput: false)
        return .ok(fields: ["\(sequence)"], data: [])
    }

    private func receive(by agent: Agent, door: String, timeout: UInt32, caller: HandsCaller) throws(GatewayError) -> HandsAnswer {
        let id = try agent.session.admit(.doorListen(door: door), tool: "door-receive",
                                         arguments: Self.text(["door=\(door)", "to=\(agent.name)", "timeout-ms=\(timeout)"]))
        var result = ResultHasher()
        let message: DoorBroker.Message
        do { message = try broker.receive(door: door, by: agent.name, timeoutMilliseconds: timeout, abandoned: { caller.hasHungUp }) } catch {
            try agent.session.finish(id, status: -1, result: result, countsAsOutput: false)
            return HandsAnswer(.failed(.timedOut, error.description))
        }
        result.add(stream: 1, message.bytes)
        // The message's bytes are output the agent received.
        try agent.session.finish(id, status: 0, result: result)
        let broker = self.broker
        return HandsAnswer(.ok(fields: [message.from, "\(message.sequence)"], data: message.bytes),
                           undelivered: { broker.putBack(message) })
    }

    // MARK: Sub-agents

    private func spawn(_ request: SpawnRequest, parent: Agent) throws(GatewayError) -> HandsReply {
        let name = parent.name + "." + request.name
        var fields = ["name=\(name)", "policy-sha256=\(Self.sha256(request.policy))", "vcpus=\(request.vcpus)",
                      "memory-mib=\(request.memoryMiB)"]
        fields += request.argv.enumerated().map { "argv[\($0.offset)]=\(Self.escaped(Array($0.element.utf8)))" }
        fields += request.env.enumerated().map { "env[\($0.offset)]=\(Self.escaped(Array($0.element.utf8)))" }
        var child: AgentPolicy?
        let id = try parent.session.admit(.spawn, tool: "spawn", arguments: Self.text(fields)) {
            switch self.check(request, name: name, parent: parent) {
            case .allowed(let policy):
                child = policy
                return nil
            case .refused(let refusal): return refusal
            }
        }
        guard let child else { preconditionFailure("a spawn was admitted without its checked policy") }
        let plan = SpawnPlan(name: name, parent: parent.name, policy: child, policySource: request.policy,
                             vcpus: Int(request.vcpus), memoryMiB: Int(request.memoryMiB), argv: request.argv, env: request.env)
        var result = ResultHasher()
        result.add(stream: 1, Array(name.utf8))
        // Counted while it boots, so that a shut-down does not leave it behind.
        let open = monitor.holding { () -> Bool in
            guard !closed else { return false }
            booting.insert(name)
            return true
        }
        guard open else {
            try parent.session.finish(id, status: -1, result: result, countsAsOutput: false)
            return .failed(.failed, "sub-agent \(name): the run is ending")
        }
        let booted: (gateway: ToolGateway, handsSocket: String)
        do { booted = try launcher.boot(plan) } catch let refusal {
            doneBooting(name)
            try parent.session.finish(id, status: -1, result: result, countsAsOutput: false)
            switch refusal {
            case .noRoom(let why): return .failed(.noRoom, "sub-agent \(name): \(why)")
            case .failed(let why): return .failed(.failed, "sub-agent \(name) did not start: \(why)")
            }
        }
        if doneBooting(name) {
            launcher.halt(name, reason: "the run ended while it booted")
            try parent.session.finish(id, status: -1, result: result, countsAsOutput: false)
            return .failed(.failed, "sub-agent \(name): the run is ending")
        }
        let agent = Agent(name: name, parent: parent.name, session: booted.gateway.session)
        do { try add(agent, handsSocket: booted.handsSocket) } catch {
            launcher.halt(name, reason: "its hands socket failed: \(error)")
            try parent.session.finish(id, status: -1, result: result, countsAsOutput: false)
            return .failed(.failed, "sub-agent \(name): \(error)")
        }
        let gateway = booted.gateway
        do { try POSIXThread.detach(name: "agent-run") { [self] in run(plan, in: agent, gateway: gateway) } } catch {
            stopSubtree(name, reason: "its command could not start: \(error)")
            try parent.session.finish(id, status: -1, result: result, countsAsOutput: false)
            return .failed(.failed, "sub-agent \(name): \(error)")
        }
        try parent.session.finish(id, status: 0, result: result, countsAsOutput: false)
        return .ok(fields: [name], data: [])
    }

    /// Ends a spawn's boot; true when the tree was shut down meanwhile.
    @discardableResult
    private func doneBooting(_ name: String) -> Bool {
        monitor.holding {
            booting.remove(name)
            monitor.broadcast()
            return closed
        }
    }

    /// The child's policy, or the denial that names what is wrong with it.
    private func check(_ request: SpawnRequest, name: String, parent: Agent) -> Checked {
        let rule = RuleRef("spawn", line: nil)
        func refuse(_ why: String) -> Checked { .refused(Decision.refused(rule, because: why)) }
        guard Self.isValidChildName(request.name) else {
            return refuse("sub-agent name \"\(request.name)\" is invalid: use 1–32 letters, digits, '_' or '-'")
        }
        guard name.utf8.count <= Self.maxNameLength else {
            return refuse("sub-agent name \(name) is longer than \(Self.maxNameLength) bytes")
        }
        if agent(name) != nil { return refuse("a sub-agent named \(name) is already running") }
        let format: PolicyFormat
        switch request.policyFormat {
        case "yaml": format = .yaml
        case "json": format = .json
        default: return refuse("policy format \"\(request.policyFormat)\" is neither yaml nor json")
        }
        guard let text = String(validating: request.policy, as: UTF8.self) else { return refuse("the sub-agent's policy is not UTF-8") }
        let policy: AgentPolicy
        do { policy = try AgentPolicy.parse(text, format: format, file: "\(name)'s policy") } catch {
            return refuse("the sub-agent's policy does not load: \(error)")
        }
        if let parentPolicy = parent.policy {
            let widenings = policy.widenings(over: parentPolicy, subtree: parent.name)
            if !widenings.isEmpty {
                return refuse("the sub-agent's policy is wider than its parent's: "
                              + widenings.map(\.description).joined(separator: "; "))
            }
        }
        if request.vcpus < 1 || Int(request.vcpus) > policy.resources.vcpus {
            return refuse("--vcpus \(request.vcpus) is outside 1 and the sub-agent policy's resources.vcpus (\(policy.resources.vcpus))")
        }
        if request.memoryMiB < 1 || Int(request.memoryMiB) > policy.resources.memoryMiB {
            return refuse("--memory \(request.memoryMiB) MiB is outside 1 and the sub-agent policy's resources.memory_mib (\(policy.resources.memoryMiB))")
        }
        return .allowed(policy)
    }

    private enum Checked {
        case allowed(AgentPolicy)
        case refused(Decision)
    }

    static func isValidChildName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 32 && name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f
        }
    }

    /// Runs the sub-agent's command through its gateway, keeps how it ended, and stops its
    /// VM (and anything it started) once it has.
    private func run(_ plan: SpawnPlan, in agent: Agent, gateway: ToolGateway) {
        var stdout = OutputTail(limit: Self.outputKept)
        var stderr = OutputTail(limit: Self.outputKept)
        let env = plan.env.isEmpty ? ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"] : plan.env
        let status: ChildOutcome.Status
        do {
            let report = try gateway.exec(ExecRequest(argv: plan.argv, env: env, cwd: "/"), input: .none) { isStdout, bytes in
                if isStdout { stdout.add(bytes) } else { stderr.add(bytes) }
            }
            switch report.status {
            case .exited(let code): status = .exited(Int(code))
            case .signaled(let signal): status = .signaled(Int(signal))
            }
        } catch .denied(let decision) {
            status = .failed(.denied, GatewayError.denied(decision).description)
        } catch {
            status = .failed(.failed, error.description)
        }
        monitor.holding {
            // A sub-agent stopped from outside ends with the stop's reason, not the broken connection.
            agent.outcome = ChildOutcome(status: agent.stopping.map { .failed(.failed, "stopped: \($0)") } ?? status,
                                         stdout: stdout.bytes, stderr: stderr.bytes)
            monitor.broadcast()
        }
        stopSubtree(plan.name, reason: "its command ended")
    }

    private func wait(for target: String, by caller: Agent, timeout: UInt32, caller connection: HandsCaller) throws(GatewayError) -> HandsReply {
        let name = resolve(target, under: caller)
        let id = try caller.session.admit(.spawn, tool: "wait", arguments: Self.text(["agent=\(name)", "timeout-ms=\(timeout)"])) {
            self.isDescendant(name, of: caller.name) ? nil
                : Decision.refused(RuleRef("spawn", line: nil), because: "\(name) is not a sub-agent of \(caller.name)")
        }
        var result = ResultHasher()
        let deadline: UInt64? = timeout == 0 ? nil : MonotonicClock.deadline(milliseconds: timeout)
        // Over once its VM is gone too, so what it held is free for the next spawn.
        let (outcome, running): (ChildOutcome?, Bool) = monitor.holding {
            _ = monitor.wait(until: deadline, giveUp: { connection.hasHungUp }) { agents[name] == nil }
            return (finished[name], agents[name] != nil)
        }
        guard let outcome else {
            try caller.session.finish(id, status: -1, result: result, countsAsOutput: false)
            if running { return .failed(.timedOut, "sub-agent \(name) was still running after \(timeout) ms") }
            return .failed(.notFound, "no sub-agent \(name)")
        }
        result.add(stream: 1, outcome.stdout)
        result.add(stream: 2, outcome.stderr)
        let reply: HandsReply
        let status: Int64
        switch outcome.status {
        case .exited(let code):
            status = Int64(code)
            reply = .ok(fields: ["exited", "\(code)", String(decoding: outcome.stderr, as: UTF8.self)], data: outcome.stdout)
        case .signaled(let signal):
            status = 128 + Int64(signal)
            reply = .ok(fields: ["signaled", "\(signal)", String(decoding: outcome.stderr, as: UTF8.self)], data: outcome.stdout)
        case .failed(let failure, let why):
            status = -1
            reply = .failed(failure, "sub-agent \(name): \(why)")
        }
        try caller.session.finish(id, status: status, result: result)
        return reply
    }

    private func stop(_ target: String, by caller: Agent) throws(GatewayError) -> HandsReply {
        let name = resolve(target, under: caller)
        let id = try caller.session.admit(.spawn, tool: "stop", arguments: Self.text(["agent=\(name)"])) {
            self.isDescendant(name, of: caller.name) ? nil
                : Decision.refused(RuleRef("spawn", line: nil), because: "\(name) is not a sub-agent of \(caller.name)")
        }
        let running = agent(name) != nil
        if running { stopSubtree(name, reason: "stopped by \(caller.name)") }
        try caller.session.finish(id, status: running ? 0 : -1, result: ResultHasher(), countsAsOutput: false)
        return running ? .ok(fields: [], data: []) : .failed(.notFound, "no running sub-agent \(name)")
    }

    /// How finished sub-agents ended, after their VMs are gone, for a `hands wait` that comes late.
    private var finished: [String: ChildOutcome] = [:]

    /// Stops `name`'s VM and every VM under it, deepest first. Their waiters see how they ended.
    public func stopSubtree(_ name: String, reason: String) {
        let doomed: [Agent] = monitor.holding {
            let list = agents.values.filter { $0.name == name || isDescendant($0.name, of: name) }
            for agent in list where agent.outcome == nil && agent.stopping == nil { agent.stopping = reason }
            return list.sorted { $0.depth > $1.depth }
        }
        for agent in doomed {
            agent.listener?.stop()
            broker.close(agent: agent.name)
            launcher.halt(agent.name, reason: agent.name == name ? reason : "its parent \(name) stopped")
            monitor.holding {
                // Its command's thread may not have heard yet; the stop is how it ended.
                finished[agent.name] = agent.outcome ?? ChildOutcome(status: .failed(.failed, "stopped: \(agent.stopping ?? reason)"))
                agents[agent.name] = nil
                monitor.broadcast()
            }
        }
    }

    public func children(of parent: String) -> [Agent] {
        monitor.holding { agents.values.filter { $0.parent == parent }.sorted { $0.name < $1.name } }
    }

    /// A short name is one of the caller's own sub-agents; a dotted one is taken as written.
    func resolve(_ target: String, under caller: Agent) -> String {
        target.contains(".") ? target : caller.name + "." + target
    }

    func isDescendant(_ name: String, of ancestor: String) -> Bool {
        name.hasPrefix(ancestor + ".")
    }

    // MARK: Log text

    /// Logged arguments: one `name=value` line each, in the order given.
    static func text(_ fields: [String]) -> [UInt8] { Array((fields.joined(separator: "\n") + "\n").utf8) }

    static func sha256(_ bytes: [UInt8]) -> String { Hex.encode(SHA256.hash(data: bytes)) }

    /// Bytes as one line: printable ASCII as is, `\\`, and `\xHH` for the rest.
    static func escaped(_ bytes: [UInt8]) -> String {
        var out = ""
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\\"): out += "\\\\"
            case 0x20..<0x7f: out.unicodeScalars.append(Unicode.Scalar(byte))
            default: out += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return out
    }
}

/// The last `limit` bytes written.
struct OutputTail {
    let limit: Int
    private(set) var bytes: [UInt8] = []

    init(limit: Int) { self.limit = limit }

    mutating func add(_ chunk: [UInt8]) {
        bytes += chunk
        if bytes.count > limit { bytes.removeFirst(bytes.count - limit) }
    }
}

/// Hands calls name no guest paths: a policy never needs to resolve one for them.
public struct NoGuestPaths: PathResolver {
    public init() {}
    public func canonicalPath(_ path: String, followFinalSymlink: Bool) -> String? { nil }
}
