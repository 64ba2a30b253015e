import Doors
import Gateway
import Policy

/// Doors between the agents of a tree: a message is queued only when both sides' policies allow
/// it (docs/hands.md), and a receive blocks until one comes, its deadline passes or the caller
/// hangs up.
extension AgentTree {
    func send(from sender: Agent, door: String, to: String, message: [UInt8], timeout: UInt32,
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
        let id = try sender.session.admit(.doorSend(door: door, to: to), tool: "door-send",
                                          arguments: GovernedSession.arguments(lines: fields)) {
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
            case .queueFull, .recipientFull, .nothingArrived: return .failed(.timedOut, error.description)
            case .abandoned: return .failed(.failed, error.description)
            }
        }
        result.add(stream: 1, Array("\(sequence)".utf8))
        try sender.session.finish(id, status: 0, result: result, countsAsOutput: false)
        return .ok(fields: ["\(sequence)"], data: [])
    }

    func receive(by agent: Agent, door: String, timeout: UInt32, caller: HandsCaller) throws(GatewayError) -> HandsAnswer {
        let arguments = GovernedSession.arguments(lines: ["door=\(door)", "to=\(agent.name)", "timeout-ms=\(timeout)"])
        let id = try agent.session.admit(.doorListen(door: door), tool: "door-receive", arguments: arguments)
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
}
