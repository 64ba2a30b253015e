import Doors
import Policy

/// Two policies (YAML), parent then child, split at the first NUL byte: when the narrowing
/// check finds no widening, every call the child is allowed, the parent is allowed too, and
/// each door rule the child gets is no looser than the parent's, nor its network limits and
/// brain (docs/policy.md, "Sub-agent
/// policies").
enum NarrowingTarget {
    static let paths = ["/", "/data", "/data/x", "/data/caf\u{E9}/x", "/data/cafe\u{301}/x", "/evidence/a/b", "/etc/passwd", "/tmp/a/x",
                        "/out/report.md"]
    static let names = ["lead", "lead.a", "boss", "reports", "findings", "x"]
    static let namespaces = ["cases/1", "cases/1/findings", "intel/x", "x"]

    static let calls: [ToolCall] = paths.flatMap { path in
        [ToolCall.readFile(path: path), .writeFile(path: path), .list(path: path), .mkdir(path: path, parents: true),
         .remove(path: path, recursive: true), .exec(ExecRequest(argv: [path, "-i", path], env: ["LANG=C"], cwd: path))]
    } + namespaces.flatMap { namespace in BucketOperation.allCases.map { ToolCall.bucket(namespace: namespace, operation: $0) } }
        + names.flatMap { door in names.flatMap { peer in [ToolCall.doorSend(door: door, to: peer), .doorReceive(door: door, from: peer)] } }
        + names.map { ToolCall.doorListen(door: $0) } + [.spawn] + egressCalls
        + ["claude-3", "gpt-4o", "x"].flatMap { model in [1, 4096, 100_000].map { ToolCall.brain(model: model, maxTokens: $0) } }

    /// Names and literals, each resolved to a public, a private and a mapped loopback address.
    static let egressCalls: [ToolCall] = {
        let resolved: [[IPAddress]] = [[.v4(0x5DB8_D822)], [.v4(0x0A00_0005)], [.v6(0xFFFF_7F00_0001)], []]
        let hosts = ["api.example.com", "a.b.example.com", "example.com", "evil.test", "10.0.0.5", "93.184.216.34", "::ffff:127.0.0.1",
                     "169.254.169.254", "0177.0.0.1"]
        return hosts.flatMap { host in
            resolved.flatMap { addresses in
                [80, 443, 8080].flatMap { (port: UInt16) in
                    [ToolCall.connect(host: host, port: port, scheme: .tls, resolved: addresses),
                     .httpRequest(host: host, port: port, method: "GET", path: "/docs/a", resolved: addresses),
                     .httpRequest(host: host, port: port, method: "POST", path: "/api/x/", resolved: addresses)]
                }
            }
        }
    }()

    static func run(_ input: [UInt8]) {
        guard let split = input.firstIndex(of: 0),
              let parentText = String(validating: input[..<split], as: UTF8.self),
              let childText = String(validating: input[(split + 1)...], as: UTF8.self),
              let parent = try? AgentPolicy.parse(parentText, format: .yaml, file: "parent"),
              let child = try? AgentPolicy.parse(childText, format: .yaml, file: "child"),
              child.widenings(over: parent).isEmpty
        else { return }
        let resolver = LexicalResolver()
        for call in calls where child.evaluate(call, resolver: resolver).isAllowed {
            guard parent.evaluate(call, resolver: resolver).isAllowed else { violated("the child may \(call), its parent may not") }
        }
        for door in names {
            for peer in names {
                for (mine, theirs) in [(child.doorRule(door: door, sendingTo: peer), parent.doorRule(door: door, sendingTo: peer)),
                                       (child.doorRule(door: door, receivingFrom: peer), parent.doorRule(door: door, receivingFrom: peer))] {
                    guard let mine else { continue }
                    guard let theirs else { violated("the child may use door \(door) with \(peer), its parent may not") }
                    guard mine.maxMessageBytes <= theirs.maxMessageBytes, mine.queueDepth <= theirs.queueDepth,
                          mine.logContent || !theirs.logContent
                    else { violated("door \(door) with \(peer): the child's \(mine.rule) is looser than the parent's \(theirs.rule)") }
                }
            }
        }
        let (c, p) = (child.limits, parent.limits)
        guard c.cycles <= p.cycles, c.wallTime <= p.wallTime, c.callTimeout <= p.callTimeout, c.outputBytes <= p.outputBytes else {
            violated("the child's limits are over the parent's")
        }
        func within(_ cap: Int?, _ parentCap: Int?) -> Bool { parentCap.map { cap != nil && cap! <= $0 } ?? true }
        let (n, q) = (child.network.limits, parent.network.limits)
        guard child.network.egress.isEmpty || (within(n.connections, q.connections) && within(n.bytesPerSession, q.bytesPerSession)) else {
            violated("the child's network limits are over the parent's")
        }
        if let mine = child.brain {
            guard let theirs = parent.brain, mine.baseURL == theirs.baseURL, within(mine.maxTokensPerSession, theirs.maxTokensPerSession),
                  within(mine.maxRequests, theirs.maxRequests), mine.logContent || !theirs.logContent
            else { violated("the child's brain is looser than the parent's") }
        }
    }
}
