import Policy
import TestRandom
import Testing

/// Generated parent and child policies over a small vocabulary (one name in two Unicode
/// spellings, door rules that overlap, bounds and limits): whenever `widenings(over:)` finds
/// nothing, every call the child is allowed, the parent is allowed too, under a door rule no
/// looser than the child's.
@Suite struct NarrowingPropertyTests {
    static let nfc = "caf\u{E9}"
    static let nfd = "cafe\u{301}"
    static let globs = ["/data/**", "/data/*", "/data/\(nfc)/*", "/data/\(nfd)/*", "/data/\(nfc)/**", "/data/\(nfd)/**",
                        "/data/\(nfc)/x", "/data/ca*", "/etc/*"]
    static let paths = ["/data/\(nfc)/x", "/data/\(nfd)/x", "/data/\(nfc)/y/z", "/data/\(nfd)", "/data/x", "/data/cab", "/etc/passwd"]
    static let doors = ["reports", "rep*", "*", "alerts"]
    static let peers = ["boss", "b*", "*", "auditor"]
    static let doorNames = ["reports", "repx", "alerts", "other"]
    static let peerNames = ["boss", "bob", "auditor", "x"]

    struct DoorSpec {
        var door: String
        var send: [String]
        var receive: [String]
        var maxMessageBytes: String
        var queueDepth: Int
        var logContent: Bool
    }

    struct Spec {
        var read: [String]
        var doors: [DoorSpec]
        var cycles: Int
        var outputKiB: Int

        var yaml: String {
            var text = "version: 1\nagent: a\ntools:\n  files:\n    read:\n"
            for glob in read { text += "      - \"\(glob)\"\n" }
            text += "  doors:\n"
            for rule in doors {
                text += "    - door: \"\(rule.door)\"\n"
                for (key, list) in [("send", rule.send), ("receive", rule.receive)] where !list.isEmpty {
                    text += "      \(key): [\(list.map { "\"\($0)\"" }.joined(separator: ", "))]\n"
                }
                text += "      max_message_bytes: \(rule.maxMessageBytes)\n      queue_depth: \(rule.queueDepth)\n"
                text += "      log_content: \(rule.logContent)\n"
            }
            return text + "limits: { cycles: \(cycles), output_bytes: \(outputKiB)KiB }\n"
        }
    }

    static func door(_ random: inout SeededGenerator) -> DoorSpec {
        let peersOf = { (random: inout SeededGenerator) in (0..<Int.random(in: 1...2, using: &random)).map { _ in random.pick(peers) } }
        // At least one direction: a rule with neither is refused as allowing nothing.
        let directions = random.pick([["send"], ["receive"], ["send", "receive"]])
        return DoorSpec(door: random.pick(doors), send: directions.contains("send") ? peersOf(&random) : [],
                        receive: directions.contains("receive") ? peersOf(&random) : [],
                        maxMessageBytes: random.pick(["1KiB", "4KiB", "64KiB"]), queueDepth: random.pick([2, 8, 16]),
                        logContent: random.chance(50))
    }

    static func parent(_ random: inout SeededGenerator) -> Spec {
        Spec(read: (0..<Int.random(in: 1...3, using: &random)).map { _ in random.pick(globs) },
             doors: (0..<Int.random(in: 1...3, using: &random)).map { _ in door(&random) },
             cycles: Int.random(in: 1...100, using: &random), outputKiB: Int.random(in: 1...64, using: &random))
    }

    /// Mostly the parent's rules, some of them changed: another spelling, another glob, looser or
    /// tighter bounds, rules in another order, and limits around the parent's.
    static func child(of parent: Spec, _ random: inout SeededGenerator) -> Spec {
        var child = parent
        child.read = parent.read.filter { _ in random.chance(70) }.map { glob in
            if random.chance(15) { return random.pick(globs) }
            if random.chance(15) { return glob.contains(nfc) ? glob.replacingOccurrences(of: nfc, with: nfd) : glob.replacingOccurrences(of: nfd, with: nfc) }
            return glob
        }
        if child.read.isEmpty { child.read = [random.pick(parent.read)] }
        child.doors = parent.doors.filter { _ in random.chance(70) }.map { rule in
            var rule = rule
            if random.chance(15) { rule.door = random.pick(doors) }
            if random.chance(15), !rule.send.isEmpty { rule.send = [random.pick(peers)] }
            if random.chance(15) { rule.maxMessageBytes = random.pick(["1KiB", "4KiB", "64KiB"]) }
            if random.chance(15) { rule.queueDepth = random.pick([2, 8, 16]) }
            if random.chance(15) { rule.logContent.toggle() }
            return rule
        }
        if child.doors.isEmpty || random.chance(10) { child.doors.append(door(&random)) }
        if random.chance(20) { child.doors.shuffle(using: &random) }
        child.cycles = max(1, parent.cycles + Int.random(in: -20...2, using: &random))
        child.outputKiB = max(1, parent.outputKiB + Int.random(in: -8...1, using: &random))
        return child
    }

    @Test func aChildWithNoWideningsIsAllowedNothingItsParentIsNot() throws {
        var random = SeededGenerator(seed: 0x6E61_72726F77)
        var narrower = 0
        var wider = 0
        var checkedCalls = 0
        for round in 0..<4000 {
            let parentSpec = Self.parent(&random)
            let parent = try AgentPolicy.parse(parentSpec.yaml, format: .yaml, file: "p.yaml")
            let child = try AgentPolicy.parse(Self.child(of: parentSpec, &random).yaml, format: .yaml, file: "c.yaml")
            guard child.widenings(over: parent).isEmpty else {
                wider += 1
                continue
            }
            narrower += 1
            for path in Self.paths where child.evaluate(.readFile(path: path), resolver: LexicalResolver()).isAllowed {
                checkedCalls += 1
                #expect(parent.evaluate(.readFile(path: path), resolver: LexicalResolver()).isAllowed, "round \(round): \(path)")
            }
            for door in Self.doorNames {
                for peer in Self.peerNames {
                    let pairs = [(child.doorRule(door: door, sendingTo: peer), parent.doorRule(door: door, sendingTo: peer)),
                                 (child.doorRule(door: door, receivingFrom: peer), parent.doorRule(door: door, receivingFrom: peer))]
                    for case (let mine?, let theirs) in pairs {
                        checkedCalls += 1
                        guard let theirs else {
                            Issue.record("round \(round): the child may use \(door) with \(peer), the parent may not")
                            continue
                        }
                        #expect(mine.maxMessageBytes <= theirs.maxMessageBytes && mine.queueDepth <= theirs.queueDepth
                                    && (mine.logContent || !theirs.logContent), "round \(round): \(door) \(peer): \(mine.rule) over \(theirs.rule)")
                    }
                }
            }
            #expect(child.limits.cycles <= parent.limits.cycles && child.limits.outputBytes <= parent.limits.outputBytes)
        }
        // Both sides are reached, and the narrower children are allowed something.
        #expect(narrower > 500 && wider > 1000 && checkedCalls > 3000, "\(narrower) narrower, \(wider) wider, \(checkedCalls) calls")
    }
}
