import Doors
import Gateway
import Policy
import POSIX

/// Sub-agents: spawn (checked no wider than the parent, its VM from the launcher), wait, stop,
/// and the tree they form.
extension AgentTree {
    func spawn(_ request: SpawnRequest, parent: Agent) throws(GatewayError) -> HandsReply {
        let name = parent.name + "." + request.name
        var fields = ["name=\(name)", "policy-sha256=\(Self.sha256(request.policy))", "vcpus=\(request.vcpus)",
                      "memory-mib=\(request.memoryMiB)"]
        fields += request.argv.enumerated().map { "argv[\($0.offset)]=\(Self.escaped(Array($0.element.utf8)))" }
        fields += request.env.enumerated().map { "env[\($0.offset)]=\(Self.escaped(Array($0.element.utf8)))" }
        fields += request.disks.enumerated().map { "disk[\($0.offset)]=\($0.element)" }
        var child: AgentPolicy?
        var disks: [HeldDisk] = []
        let id = try parent.session.admit(.spawn, tool: "spawn", arguments: GovernedSession.arguments(lines: fields)) {
            if self.tape != nil {
                return Decision.refused(RuleRef("record", line: nil),
                                        because: "a recorded session starts no sub-agents: a record holds the root agent's calls only")
            }
            switch self.check(request, name: name, parent: parent) {
            case .allowed(let policy, let passed):
                // Last: joining the tree's budget is the one step with an effect.
                do throws(GatewayError) {
                    if let budget = self.budget, let why = try budget.join(name, parent: parent.name, limits: policy.limits) {
                        return Decision.refused(RuleRef("spawn", line: nil), because: "the sub-agent does not fit in its tree's budget: \(why)")
                    }
                } catch {
                    return Decision.refused(RuleRef("spawn", line: nil), because: "the tree's budget cannot be read: \(error)")
                }
                child = policy
                disks = passed
                return nil
            case .refused(let refusal): return refusal
            }
        }
        guard let child else { preconditionFailure("a spawn was admitted without its checked policy") }
        var plan = SpawnPlan(name: name, parent: parent.name, policy: child, policySource: request.policy,
                             vcpus: Int(request.vcpus), memoryMiB: Int(request.memoryMiB), argv: request.argv, env: request.env,
                             limits: budget?.session(name, limits: child.limits))
        plan.disks = disks
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
        let booted: (gateway: ToolGateway, handsSocket: HandsSocketPlace)
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
        let agent = Agent(name: name, parent: parent.name, session: booted.gateway.session, disks: disks)
        do { try add(agent, handsSocket: booted.handsSocket) } catch {
            launcher.halt(name, reason: "its hands socket failed: \(error)")
            try parent.session.finish(id, status: -1, result: result, countsAsOutput: false)
            return .failed(.failed, "sub-agent \(name): \(error)")
        }
        let gateway = booted.gateway
        do { try POSIXThread.detach(name: "agent-run") { [self, plan] in run(plan, in: agent, gateway: gateway) } } catch {
            stopSubtree(name, reason: "its command could not start: \(error)")
            try parent.session.finish(id, status: -1, result: result, countsAsOutput: false)
            return .failed(.failed, "sub-agent \(name): \(error)")
        }
        try parent.session.finish(id, status: 0, result: result, countsAsOutput: false)
        return .ok(fields: [name], data: [])
    }

    /// Ends a spawn's boot; true when the tree was shut down meanwhile.
    @discardableResult
    func doneBooting(_ name: String) -> Bool {
        monitor.holding {
            booting.remove(name)
            monitor.broadcast()
            return closed
        }
    }

    /// The child's policy, or the denial that names what is wrong with it.
    func check(_ request: SpawnRequest, name: String, parent: Agent) -> Checked {
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
        let passed = passedDisks(request.disks, from: parent, childPolicy: policy)
        if let refusal = passed.refusal { return .refused(refusal) }
        return .allowed(policy, disks: passed.disks)
    }

    /// The parent's disks a spawn names, each passed on read-only: a name the parent holds,
    /// once; never a read-write one (a read-write disk is one VM's at a time); and, the root
    /// image aside (the operator's choice, like the kernel), one the child's own policy allows
    /// attaching (`resources.disks`), judged on the host's paths.
    func passedDisks(_ names: [String], from parent: Agent, childPolicy: AgentPolicy) -> (disks: [HeldDisk], refusal: Decision?) {
        let rule = RuleRef("spawn", line: nil)
        func refuse(_ why: String) -> ([HeldDisk], Decision?) { ([], Decision.refused(rule, because: why)) }
        guard names.count <= SpawnRequest.maxDisks else { return refuse("a sub-agent may be given at most \(SpawnRequest.maxDisks) disks") }
        var passed: [HeldDisk] = []
        for name in names {
            guard !passed.contains(where: { $0.name == name }) else { return refuse("disk \(name) is named twice") }
            guard var disk = parent.disks.first(where: { $0.name == name }) else {
                return refuse("disk \(name): \(parent.name) holds no disk of that name (it holds: \(parent.disks.map(\.name).joined(separator: ", ")))")
            }
            guard !disk.writable else {
                return refuse("disk \(name) is read-write in \(parent.name): a read-write disk is one VM's at a time")
            }
            if !disk.isRoot {
                guard let paths = diskPaths else { return refuse("disk \(name): this host passes no disks to sub-agents") }
                let decision = childPolicy.evaluate(.attachDisk(path: disk.path, writable: false), resolver: paths)
                guard decision.isAllowed else { return ([], decision) }
            }
            disk.writable = false
            passed.append(disk)
        }
        return (passed, nil)
    }

    enum Checked {
        case allowed(AgentPolicy, disks: [HeldDisk])
        case refused(Decision)
    }

    static func isValidChildName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 32 && name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f
        }
    }

    /// Runs the sub-agent's command through its gateway, keeps how it ended, and stops its
    /// VM (and anything it started) once it has.
    func run(_ plan: SpawnPlan, in agent: Agent, gateway: ToolGateway) {
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

    func wait(for target: String, by caller: Agent, timeout: UInt32, caller connection: HandsCaller) throws(GatewayError) -> HandsReply {
        let name = resolve(target, under: caller)
        let arguments = GovernedSession.arguments(lines: ["agent=\(name)", "timeout-ms=\(timeout)"])
        let id = try caller.session.admit(.spawn, tool: "wait", arguments: arguments) {
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

    func stop(_ target: String, by caller: Agent) throws(GatewayError) -> HandsReply {
        let name = resolve(target, under: caller)
        let arguments = GovernedSession.arguments(lines: ["agent=\(name)"])
        let id = try caller.session.admit(.spawn, tool: "stop", arguments: arguments) {
            self.isDescendant(name, of: caller.name) ? nil
                : Decision.refused(RuleRef("spawn", line: nil), because: "\(name) is not a sub-agent of \(caller.name)")
        }
        let running = agent(name) != nil
        if running { stopSubtree(name, reason: "stopped by \(caller.name)") }
        try caller.session.finish(id, status: running ? 0 : -1, result: ResultHasher(), countsAsOutput: false)
        return running ? .ok(fields: [], data: []) : .failed(.notFound, "no running sub-agent \(name)")
    }

    /// Stops `name`'s VM and every VM under it, deepest first. Their waiters see how they ended.
    public func stopSubtree(_ name: String, reason: String) {
        let doomed: [Agent] = monitor.holding {
            let list = agents.values.filter { $0.name == name || isDescendant($0.name, of: name) }
            for agent in list where agent.outcome == nil && agent.stopping == nil { agent.stopping = reason }
            return list.sorted { $0.depth > $1.depth }
        }
        for agent in doomed {
            agent.listener?.stop()
            for egress in agent.egressListeners { egress.stop() }
            broker.close(agent: agent.name)
            packageStaging?.removeAll(agent: agent.name)
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
}
