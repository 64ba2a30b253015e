@testable import Agents
import Audit
import Buckets
import Doors
import Egress
import Foundation
import Gateway
import Glibc
import GuestClient
@testable import GuestClientTestSupport
import Policy
import Testing
import TLSTestSupport

/// Hands calls through the tree: both sides' policies for doors, the narrowing check and the
/// parent's budget for spawn, wait and stop over the subtree, and every call in the log. The
/// sub-agents' VMs are fakes (a scripted Doors guest); everything else is real.
@Suite(.serialized) struct AgentTreeTests {
    static let parentPolicy = """
        version: 1
        agent: boss
        tools:
          exec:
            - program: /bin/analyse
              args: any
              env: [PATH, HOME]
          buckets:
            - namespace: cases/**
              operations: [put, get, query]
          doors:
            - door: findings
              receive: ["boss.*"]
              max_message_bytes: 64
              queue_depth: 2
            - door: orders
              send: ["boss.*"]
        limits:
          cycles: 50
        resources: { vcpus: 4, memory_mib: 2048, sub_agents: 2 }
        """

    static let childPolicy = """
        version: 1
        agent: worker
        tools:
          exec:
            - program: /bin/analyse
              args: any
              env: [PATH, HOME]
          buckets:
            - namespace: cases/**
              operations: [put]
          doors:
            - door: findings
              send: [boss]
              max_message_bytes: 64
              queue_depth: 2
        limits:
          cycles: 20
          wall_time: 5m
          output_bytes: 1MiB
        resources: { vcpus: 1, memory_mib: 256 }
        """

    /// Boots nothing: each sub-agent is a scripted guest that answers one exec with
    /// "analysed" on stdout and exit 3, then waits until the connection ends.
    final class FakeLauncher: SubAgentLauncher, @unchecked Sendable {
        let log: any AuditSink
        let requestIDs: RequestNumbers
        let directory: String
        var booted: [SpawnPlan] = []
        var halted: [String] = []
        var refuse: SpawnRefusal?
        /// When set, each guest answers its exec only once this is signalled.
        var hold: DispatchSemaphore?
        var guests: [Running<Int>] = []
        let lock = NSLock()

        init(log: any AuditSink, requestIDs: RequestNumbers, directory: String) {
            self.log = log
            self.requestIDs = requestIDs
            self.directory = directory
        }

        /// When set, boot signals `bootStarted` and then waits for this (halt signals it).
        var bootGate: DispatchSemaphore?
        let bootStarted = DispatchSemaphore(value: 0)

        func boot(_ plan: SpawnPlan) throws(SpawnRefusal) -> (gateway: ToolGateway, handsSocket: HandsSocketPlace) {
            if let refuse { throw refuse }
            if let bootGate {
                bootStarted.signal()
                _ = bootGate.wait(timeout: .now() + 10)
            }
            let connected: (DoorsClient, Running<Int>)
            let hold = self.hold
            do {
                connected = try connect { peer in
                    while let frame = try? peer.receive() {
                        switch frame.message {
                        case .resolve(let path):
                            try peer.send(Frame(requestID: frame.requestID, .resolved(path: path)))
                        case .exec:
                            _ = hold?.wait(timeout: .now() + 10)
                            try peer.send(Frame(requestID: frame.requestID, .started(pid: 5)),
                                          Frame(requestID: frame.requestID, .stdoutData(Array("analysed".utf8))),
                                          Frame(requestID: frame.requestID, .stderrData(Array("note".utf8))),
                                          Frame(requestID: frame.requestID, .exit(ExitReport(status: .exited(code: 3)))))
                        default:
                            break
                        }
                    }
                    return 1
                }
            } catch { throw .failed("\(error)") }
            lock.lock()
            booted.append(plan)
            guests.append(connected.1)
            lock.unlock()
            let gateway = ToolGateway(agent: plan.name, client: connected.0, policy: plan.policy, log: log, limits: plan.limits,
                                      requestIDs: requestIDs)
            return (gateway, HandsSocketPlace(path: directory + "/" + plan.name + ".hands", staging: directory))
        }

        func halt(_ name: String, reason: String) {
            lock.lock()
            halted.append(name)
            lock.unlock()
            bootGate?.signal()
        }
    }

    final class Fixture {
        let directory: String
        let log: AuditLog
        let store: BucketStore
        let launcher: FakeLauncher
        let tree: AgentTree
        let root: Agent
        /// The tree's one budget, as a run keeps it.
        let budget: TreeLimits
        let hold = DispatchSemaphore(value: 0)

        /// Lets `count` held sub-agent commands answer.
        func release(_ count: Int = 1) { for _ in 0..<count { hold.signal() } }

        init(parentPolicy: String = AgentTreeTests.parentPolicy, disks: [HeldDisk] = []) throws {
            var template = Array("/tmp/agents-test.XXXXXX".utf8CString)
            directory = String(cString: mkdtemp(&template)!)
            log = try AuditLog(path: directory + "/audit.db")
            store = try BucketStore(path: directory + "/buckets.db")
            let ids = RequestNumbers()
            launcher = FakeLauncher(log: log, requestIDs: ids, directory: directory)
            // Sub-agents' commands run until a test lets them end.
            launcher.hold = hold
            let policy = try AgentPolicy.parse(parentPolicy, format: .yaml, file: "boss.yaml")
            budget = TreeLimits.inMemory(root: "boss", limits: policy.limits)
            tree = AgentTree(store: store, launcher: launcher, requestIDs: ids, budget: budget)
            tree.diskPaths = AsWritten()
            root = Agent(name: "boss", parent: nil,
                         session: GovernedSession(agent: "boss", policy: policy, log: log, resolver: AsWritten(),
                                                  limits: budget.session("boss", limits: policy.limits), requestIDs: ids),
                         disks: disks)
            try tree.addRoot(root, handsSocket: HandsSocketPlace(path: directory + "/boss.hands", staging: directory))
        }

        deinit {
            tree.shutDown(root: "boss", reason: "test over")
            release(8)
            try? log.close()
            try? store.close()
            _ = try? FileManager.default.removeItem(atPath: directory)
        }

        func spawn(_ name: String, policy: String = AgentTreeTests.childPolicy, by caller: String = "boss",
                   vcpus: UInt32 = 1, memory: UInt32 = 256, disks: [String] = []) -> HandsReply {
            tree.handle(.spawn(SpawnRequest(name: name, policy: Array(policy.utf8), policyFormat: "yaml", vcpus: vcpus,
                                            memoryMiB: memory, argv: ["/bin/analyse", name], disks: disks)), from: caller)
        }

        func events() throws -> [AuditEvent] {
            var events: [AuditEvent] = []
            var index: UInt64 = 0
            while let record = try log.record(at: index) {
                events.append(record.event)
                index += 1
            }
            return events
        }

        /// The decisions logged for calls of `tool`.
        func decisions(tool: String) throws -> [Audit.Decision] {
            let events = try events()
            let ids = Set(events.compactMap { event -> UInt64? in
                if case .toolRequest(let request) = event, request.tool == tool { return request.requestID }
                return nil
            })
            return events.compactMap { event in
                if case .decision(let decision) = event, ids.contains(decision.requestID) { return decision }
                return nil
            }
        }
    }

    struct AsWritten: PathResolver, Sendable {
        func canonicalPath(_ path: String, followFinalSymlink: Bool) -> String? { path }
    }

    func failure(_ reply: HandsReply) -> (HandsFailure, String)? {
        if case .failed(let code, let message) = reply { return (code, message) }
        return nil
    }

    @Test func aSubAgentRunsItsCommandAndItsParentWaitsForItsResult() throws {
        let fixture = try Fixture()
        #expect(fixture.spawn("a") == .ok(fields: ["boss.a"], data: []))
        let plan = try #require(fixture.launcher.booted.first)
        #expect(plan.parent == "boss" && plan.vcpus == 1 && plan.memoryMiB == 256 && plan.argv == ["/bin/analyse", "a"])
        #expect(failure(fixture.tree.handle(.wait(agent: "a", timeoutMilliseconds: 50), from: "boss"))?.0 == .timedOut)
        fixture.release()
        let waited = fixture.tree.handle(.wait(agent: "a", timeoutMilliseconds: 5000), from: "boss")
        #expect(waited == .ok(fields: ["exited", "3", "note"], data: Array("analysed".utf8)))
        // Its command over, its VM was stopped; a late wait still has the result.
        #expect(fixture.launcher.halted == ["boss.a"])
        #expect(fixture.tree.handle(.wait(agent: "boss.a", timeoutMilliseconds: 0), from: "boss") == waited)
        #expect(try fixture.decisions(tool: "spawn").map(\.verdict) == [.allow])
        #expect(try fixture.decisions(tool: "exec").map(\.verdict) == [.allow])
    }

    @Test func aSubAgentWiderThanItsParentIsRefusedWithTheReasonAndNothingBoots() throws {
        let fixture = try Fixture()
        let wider = Self.childPolicy.replacingOccurrences(of: "/bin/analyse", with: "/bin/sh")
        let (code, message) = try #require(failure(fixture.spawn("a", policy: wider)))
        #expect(code == .denied)
        #expect(message.contains("/bin/sh"), "\(message)")
        let morePower = Self.childPolicy.replacingOccurrences(of: "vcpus: 1,", with: "vcpus: 8,")
        let (code2, message2) = try #require(failure(fixture.spawn("b", policy: morePower)))
        #expect(code2 == .denied && message2.contains("vcpus"), "\(message2)")
        #expect(fixture.launcher.booted.isEmpty)
        let denials = try fixture.decisions(tool: "spawn")
        #expect(denials.count == 2 && denials.allSatisfy { $0.verdict == .deny })
    }

    /// A sub-agent may be given its parent's named disks, each read-only, if its own policy
    /// allows attaching them; never a read-write one, nor one the parent does not hold.
    @Test func aSubAgentGetsOnlyItsParentsReadOnlyDisksThatItsPolicyAllows() throws {
        let disksRule = "resources: { vcpus: 4, memory_mib: 2048, sub_agents: 2, disks: [{path: /srv/cases/**}, {path: /srv/scratch/**, mode: rw}] }"
        let parent = Self.parentPolicy.replacingOccurrences(of: "resources: { vcpus: 4, memory_mib: 2048, sub_agents: 2 }", with: disksRule)
        let held = [HeldDisk(name: "momin-root", path: "/srv/images/debian.ext4", writable: false, isRoot: true),
                    HeldDisk(name: "case1", path: "/srv/cases/7/evidence.img", writable: false),
                    HeldDisk(name: "notes", path: "/srv/scratch/notes.img", writable: true),
                    HeldDisk(name: "other", path: "/srv/other/x.img", writable: false)]
        let fixture = try Fixture(parentPolicy: parent, disks: held)
        let child = Self.childPolicy.replacingOccurrences(of: "resources: { vcpus: 1, memory_mib: 256 }",
                                                          with: "resources: { vcpus: 1, memory_mib: 256, disks: [{path: /srv/cases/7/*}] }")
        #expect(fixture.spawn("a", policy: child, disks: ["case1", "momin-root"]) == .ok(fields: ["boss.a"], data: []))
        let plan = try #require(fixture.launcher.booted.first)
        #expect(plan.disks == [held[1], held[0]])
        #expect(fixture.tree.agent("boss.a")?.disks == [held[1], held[0]])

        let refusals: [(String, [String], String)] = [
            ("b", ["notes"], "disk notes is read-write in boss: a read-write disk is one VM's at a time"),
            ("c", ["nope"], "disk nope: boss holds no disk of that name (it holds: momin-root, case1, notes, other)"),
            ("d", ["case1", "case1"], "disk case1 is named twice"),
        ]
        for (name, disks, message) in refusals {
            let (code, text) = try #require(failure(fixture.spawn(name, policy: child, disks: disks)))
            #expect(code == .denied && text.contains(message), "\(text)")
        }
        // The child's own policy must allow the file: its rule covers /srv/cases/7 only, and a
        // policy without disks allows none (the root image is not the policy's to judge).
        let (code, text) = try #require(failure(fixture.spawn("e", policy: child, disks: ["other"])))
        #expect(code == .denied && text.contains("/srv/other/x.img is not within any of resources.disks"), "\(text)")
        let (code2, text2) = try #require(failure(fixture.spawn("f", disks: ["case1"])))
        #expect(code2 == .denied && text2.contains("the policy allows no disks"), "\(text2)")
        #expect(fixture.spawn("g", disks: ["momin-root"]) == .ok(fields: ["boss.g"], data: []))
        #expect(fixture.launcher.booted.count == 2)
        let spawns = try fixture.decisions(tool: "spawn")
        #expect(spawns.map(\.verdict) == [.allow, .deny, .deny, .deny, .deny, .deny, .allow])
    }

    @Test func aParentWithoutSubAgentsCannotSpawnAndBadRequestsAreRefused() throws {
        let fixture = try Fixture(parentPolicy: Self.parentPolicy.replacingOccurrences(of: "sub_agents: 2", with: "sub_agents: 0"))
        #expect(failure(fixture.spawn("a"))?.0 == .denied)
        let open = try Fixture()
        #expect(failure(open.spawn("no.dots"))?.0 == .denied)
        #expect(failure(open.spawn("a", policy: "version: 1\nagent: [broken"))?.0 == .denied)
        #expect(failure(open.spawn("a", vcpus: 2))?.0 == .denied)  // over its own policy's resources.vcpus
        #expect(open.launcher.booted.isEmpty)
    }

    /// A recorded session holds the root agent's calls only (docs/replay.md): it starts no
    /// sub-agents, and the refusal is logged and named.
    @Test func aRecordedSessionStartsNoSubAgents() throws {
        let fixture = try Fixture()
        fixture.tree.tape = .recording(try ExchangeStore(directory: fixture.directory + "/run.rec.exchanges"))
        let (code, message) = try #require(failure(fixture.spawn("a")))
        #expect(code == .denied && message.contains("a recorded session starts no sub-agents"), "\(message)")
        #expect(fixture.launcher.booted.isEmpty)
        #expect(try fixture.decisions(tool: "spawn").map(\.rule) == ["record"])
    }

    /// Installs through the tree: refused where the host stages nothing and in a recorded session
    /// (before any index is asked: the index here is a closed port), and a piece of an install
    /// the agent does not have is not found. The fetch itself is PackageInstallerTests'.
    @Test func installsNeedStagingAreRefusedInARecordedSessionAndReadOnlyTheirOwnFiles() throws {
        let policy = Self.parentPolicy + "\npackages:\n  pip:\n    index: http://127.0.0.1:1/simple\n    allow: [momin-good]\n"
        let fixture = try Fixture(parentPolicy: policy)
        let install = HandsCall.install(ecosystem: "pip", requirements: ["momin-good"])
        let (unstaged, message) = try #require(failure(fixture.tree.handle(install, from: "boss")))
        #expect(unstaged == .failed && message.contains("stages no packages"), "\(message)")

        fixture.tree.packageStaging = try PackageStaging(root: fixture.directory + "/packages")
        fixture.tree.tape = .recording(try ExchangeStore(directory: fixture.directory + "/run.rec.exchanges"))
        let (code, refusal) = try #require(failure(fixture.tree.handle(install, from: "boss")))
        #expect(code == .denied && refusal.contains("a recorded session installs nothing"), "\(refusal)")
        #expect(try fixture.decisions(tool: "package-install").map(\.rule) == ["record"])

        let (missing, why) = try #require(failure(fixture.tree.handle(.installFile(install: "0123abcd", file: 0, offset: 0), from: "boss")))
        #expect(missing == .notFound && why.contains("no install 0123abcd"), "\(why)")
    }

    /// An agent installs one request at a time: a second while the first waits on its index is
    /// refused at once (the index here accepts and never answers), and the first goes on.
    @Test func anAgentsSecondInstallWhileOneRunsIsRefused() throws {
        let (listener, port) = try listenOnLoopback()
        defer { close(listener) }
        let policy = Self.parentPolicy + "\npackages:\n  pip:\n    index: http://127.0.0.1:\(port)/simple\n    allow: [momin-good]\n"
        let fixture = try Fixture(parentPolicy: policy)
        fixture.tree.packageStaging = try PackageStaging(root: fixture.directory + "/packages")
        fixture.tree.packageConfiguration.idleTimeout = 2
        let install = HandsCall.install(ecosystem: "pip", requirements: ["momin-good"])
        let first = Box<HandsReply>()
        let done = DispatchSemaphore(value: 0)
        let tree = fixture.tree
        Thread.detachNewThread {
            first.value = tree.handle(install, from: "boss")
            done.signal()
        }
        // The first install's page request is waiting in the listener's queue.
        var entry = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        #expect(poll(&entry, 1, 5000) == 1)
        let (code, message) = try #require(failure(fixture.tree.handle(install, from: "boss")))
        #expect(code == .failed && message.contains("already running"), "\(message)")
        #expect(done.wait(timeout: .now() + 10) == .success)
        let firstReply = try #require(first.value)
        let (firstCode, firstMessage) = try #require(failure(firstReply))
        #expect(firstCode == .failed && firstMessage.contains("the index cannot be read"), "\(firstMessage)")
        // Once it is over, the agent may install again (and fails again the same way).
        #expect(failure(fixture.tree.handle(install, from: "boss"))?.1.contains("already running") == false)
    }

    /// One budget per tree: a sub-agent's calls count in its parent's limits too, and a spawn
    /// whose declared limits do not fit in what the parent has left is refused, naming why.
    @Test func aSubAgentSpendsFromItsParentsBudgetAndMustFitInWhatIsLeft() throws {
        let fixture = try Fixture()
        // The parent (50 cycles) makes 35 calls of its own; the spawn is its 36th.
        for _ in 0..<35 { _ = try? fixture.root.session.admit(.doorListen(door: "findings"), tool: "listen", arguments: []) }
        let (code, message) = try #require(failure(fixture.spawn("a")))
        #expect(code == .denied)
        #expect(message.contains("does not fit in its tree's budget: its limits.cycles 20 is more than the 14 calls left to its parent boss"),
                "\(message)")
        #expect(fixture.launcher.booted.isEmpty)
        // One that fits joins: its exec is a call of its own and of its parent's.
        let small = Self.childPolicy.replacingOccurrences(of: "cycles: 20", with: "cycles: 10")
        #expect(fixture.spawn("b", policy: small) == .ok(fields: ["boss.b"], data: []))
        fixture.release()
        #expect(fixture.tree.handle(.wait(agent: "b", timeoutMilliseconds: 5000), from: "boss")
                == .ok(fields: ["exited", "3", "note"], data: Array("analysed".utf8)))
        let usage = try fixture.budget.usage()
        #expect(usage.member("boss.b")?.cycles == 1)
        // 35 calls, two spawns, the wait, and the child's exec.
        #expect(usage.member("boss")?.cycles == 35 + 2 + 1 + 1)
        // A child whose wall time is the parent's whole wall time cannot fit: some has passed.
        let long = Self.childPolicy.replacingOccurrences(of: "wall_time: 5m", with: "wall_time: 10m")
            .replacingOccurrences(of: "cycles: 20", with: "cycles: 5")
        let (_, longMessage) = try #require(failure(fixture.spawn("c", policy: long)))
        #expect(longMessage.contains("its limits.wall_time 600.0s is more than the 59"), "\(longMessage)")
    }

    /// The mapping of a launcher's noRoom to the reply; the real ledger's refusal through the
    /// real launcher is `SubAgentVMsTests.theLedgersRefusalReachesTheCallerAsNoRoom`.
    @Test func aLaunchersNoRoomReachesTheCallerAsNoRoom() throws {
        let fixture = try Fixture()
        fixture.launcher.refuse = .noRoom("VM \"boss.a\" asks for 1 CPU, 0 are free under \"boss\"")
        let (code, message) = try #require(failure(fixture.spawn("a")))
        #expect(code == .noRoom && message.contains("0 are free"))
        #expect(code.exitStatus == 75)
    }

    @Test func aDoorDeliversOnlyWhenBothSidesAllowItAndKeepsOrder() throws {
        let fixture = try Fixture()
        _ = fixture.spawn("a")
        let child = "boss.a"
        // The child may send on findings to boss, and boss may receive from boss.*.
        for text in ["one", "two"] {
            let sent = fixture.tree.handle(.doorSend(door: "findings", to: "boss", message: Array(text.utf8), timeoutMilliseconds: 0), from: child)
            guard case .ok = sent else { Issue.record("send \(text): \(sent)"); return }
        }
        // Depth 2 (boss's rule): a third waits, then is refused.
        let third = fixture.tree.handle(.doorSend(door: "findings", to: "boss", message: [1], timeoutMilliseconds: 50), from: child)
        #expect(failure(third)?.0 == .timedOut)
        let first = fixture.tree.handle(.doorReceive(door: "findings", timeoutMilliseconds: 0), from: "boss")
        let second = fixture.tree.handle(.doorReceive(door: "findings", timeoutMilliseconds: 0), from: "boss")
        #expect(first == .ok(fields: [child, "1"], data: Array("one".utf8)))
        #expect(second == .ok(fields: [child, "2"], data: Array("two".utf8)))
    }

    @Test func aDoorEitherSideDoesNotListIsRefusedAndNothingIsQueued() throws {
        let fixture = try Fixture()
        _ = fixture.spawn("a")
        // The child's policy lists no "orders" door to receive on: boss's send is refused by the peer.
        let toChild = fixture.tree.handle(.doorSend(door: "orders", to: "boss.a", message: [1], timeoutMilliseconds: 0), from: "boss")
        let (code, message) = try #require(failure(toChild))
        #expect(code == .denied && message.contains("boss.a"), "\(message)")
        #expect(fixture.tree.broker.queued(door: "orders", for: "boss.a") == 0)
        // Boss lists no door "gossip" at all.
        #expect(failure(fixture.tree.handle(.doorSend(door: "gossip", to: "boss.a", message: [1], timeoutMilliseconds: 0), from: "boss"))?.0 == .denied)
        // Over the size limit (64 bytes on boss's side).
        let big = fixture.tree.handle(.doorSend(door: "findings", to: "boss", message: [UInt8](repeating: 1, count: 65), timeoutMilliseconds: 0),
                                      from: "boss.a")
        #expect(failure(big)?.0 == .denied)
        #expect(fixture.tree.broker.queued(door: "findings", for: "boss") == 0)
        let sends = try fixture.decisions(tool: "door-send")
        #expect(sends.count == 3 && sends.allSatisfy { $0.verdict == .deny })
    }

    @Test func messageContentIsLoggedOnlyWhenAPolicySaysSo() throws {
        let fixture = try Fixture()
        _ = fixture.spawn("a")
        _ = fixture.tree.handle(.doorSend(door: "findings", to: "boss", message: Array("secret".utf8), timeoutMilliseconds: 0), from: "boss.a")
        let logged = try fixture.events().compactMap { event -> String? in
            if case .toolRequest(let request) = event, request.tool == "door-send" { return String(decoding: request.arguments, as: UTF8.self) }
            return nil
        }
        #expect(logged.count == 1)
        #expect(logged.first?.contains("message-sha256=") == true)
        #expect(logged.first?.contains("secret") == false)

        // Either side may ask: here the sender's rule does.
        let loud = try Fixture()
        #expect(loud.spawn("a", policy: Self.childPolicy.replacingOccurrences(of: "queue_depth: 2", with: "queue_depth: 2\n      log_content: true"))
                == .ok(fields: ["boss.a"], data: []))
        _ = loud.tree.handle(.doorSend(door: "findings", to: "boss", message: Array("secret".utf8), timeoutMilliseconds: 0), from: "boss.a")
        let loudLogged = try loud.events().compactMap { event -> String? in
            if case .toolRequest(let request) = event, request.tool == "door-send" { return String(decoding: request.arguments, as: UTF8.self) }
            return nil
        }
        #expect(loudLogged.first?.contains("message=secret") == true)
    }

    @Test func bucketsGoThroughEachAgentsOwnPolicy() throws {
        let fixture = try Fixture()
        _ = fixture.spawn("a")
        #expect(fixture.tree.handle(.bucketPut(namespace: "cases/1", key: "a", value: Array("finding".utf8)), from: "boss.a") == .ok(fields: [], data: []))
        // The child may only put.
        #expect(failure(fixture.tree.handle(.bucketGet(namespace: "cases/1", key: "a"), from: "boss.a"))?.0 == .denied)
        #expect(fixture.tree.handle(.bucketGet(namespace: "cases/1", key: "a"), from: "boss") == .ok(fields: [], data: Array("finding".utf8)))
        #expect(failure(fixture.tree.handle(.bucketGet(namespace: "cases/1", key: "zzz"), from: "boss"))?.0 == .notFound)
        guard case .ok(let fields, _) = fixture.tree.handle(.bucketQuery(namespace: "cases/1", keyPrefix: ""), from: "boss") else {
            Issue.record("query failed")
            return
        }
        #expect(fields.count == 1 && fields[0].hasPrefix("a\t7\t"))
        #expect(failure(fixture.tree.handle(.bucketPut(namespace: "other", key: "a", value: [1]), from: "boss"))?.0 == .denied)
    }

    @Test func aQueryOverMoreKeysThanAReplyHoldsIsTruncatedWithAMarker() throws {
        let fixture = try Fixture()
        // 1,500 keys of 1,000 bytes: their lines are over the 1.25 MiB a hands reply may carry.
        for i in 0..<1500 {
            _ = try fixture.store.put(namespace: "cases/big", key: String(format: "%04d", i) + String(repeating: "k", count: 996),
                                      value: [1])
        }
        let reply = fixture.tree.handle(.bucketQuery(namespace: "cases/big", keyPrefix: ""), from: "boss")
        let bytes = HandsCallCodec.encode(reply)
        let (kind, _) = try HandsCallCodec.payloadLength(header: Array(bytes.prefix(HandsCallProtocol.headerSize)))
        let decoded = try HandsCallCodec.decodeReply(kind: kind, payload: Array(bytes.dropFirst(HandsCallProtocol.headerSize)))
        guard case .ok(let fields, let data) = decoded else { Issue.record("query failed: \(decoded)"); return }
        #expect(fields.count > 1000 && fields.count < 1500)
        #expect(fields.first?.hasPrefix("0000k") == true)
        #expect(String(decoding: data, as: UTF8.self)
                == "truncated: \(fields.count) of 1500 keys shown (a reply holds at most 1.25 MiB); narrow the key prefix")
    }

    @Test func stopEndsTheSubtreeDeepestFirstAndOnlyAnAncestorMayStop() throws {
        let fixture = try Fixture()
        // A child that may itself start one sub-agent, with the same powers and limits that fit
        // in what the child has left.
        let middle = Self.childPolicy.replacingOccurrences(of: "resources: { vcpus: 1, memory_mib: 256 }",
                                                           with: "resources: { vcpus: 1, memory_mib: 256, sub_agents: 1 }")
        let leaf = Self.childPolicy.replacingOccurrences(of: "cycles: 20", with: "cycles: 10")
            .replacingOccurrences(of: "wall_time: 5m", with: "wall_time: 4m")
        #expect(fixture.spawn("a", policy: middle) == .ok(fields: ["boss.a"], data: []))
        #expect(fixture.spawn("b", policy: leaf, by: "boss.a") == .ok(fields: ["boss.a.b"], data: []))
        #expect(fixture.spawn("c") == .ok(fields: ["boss.c"], data: []))
        // A sibling is not a sub-agent.
        #expect(failure(fixture.tree.handle(.stop(agent: "boss.c"), from: "boss.a"))?.0 == .denied)
        #expect(fixture.tree.handle(.stop(agent: "a"), from: "boss") == .ok(fields: [], data: []))
        #expect(fixture.launcher.halted == ["boss.a.b", "boss.a"])
        let (code, message) = try #require(failure(fixture.tree.handle(.wait(agent: "a", timeoutMilliseconds: 1000), from: "boss")))
        #expect(code == .failed && message.contains("stopped by boss"), "\(message)")
        #expect(failure(fixture.tree.handle(.stop(agent: "a"), from: "boss"))?.0 == .notFound)
        // The still-running sibling is stopped with the rest at shutdown.
        fixture.tree.shutDown(root: "boss", reason: "test over")
        #expect(fixture.launcher.halted == ["boss.a.b", "boss.a", "boss.c"])
    }

    @Test func aSpawnStillBootingWhenTheRunEndsIsStoppedAndNeverJoinsTheTree() throws {
        let fixture = try Fixture()
        fixture.launcher.bootGate = DispatchSemaphore(value: 0)
        let reply = Box<HandsReply>()
        let done = DispatchSemaphore(value: 0)
        let tree = fixture.tree
        let request = SpawnRequest(name: "late", policy: Array(Self.childPolicy.utf8), policyFormat: "yaml", vcpus: 1, memoryMiB: 256,
                                   argv: ["/bin/analyse"])
        Thread.detachNewThread {
            reply.value = tree.handle(.spawn(request), from: "boss")
            done.signal()
        }
        #expect(fixture.launcher.bootStarted.wait(timeout: .now() + 5) == .success)
        fixture.tree.shutDown(root: "boss", reason: "test over")
        #expect(done.wait(timeout: .now() + 5) == .success)
        let (code, message) = try #require(reply.value.flatMap(failure))
        #expect(code == .failed && message.contains("the run is ending"), "\(message)")
        #expect(fixture.launcher.halted.contains("boss.late"))
        #expect(fixture.tree.children(of: "boss").isEmpty)
        // And nothing more is started: refused before any VM boots.
        #expect(failure(fixture.spawn("after"))?.1.contains("the run is ending") == true)
        #expect(!fixture.launcher.booted.contains { $0.name == "boss.after" })
    }

    @Test func whoamiNamesTheAgentAndItsParent() throws {
        let fixture = try Fixture()
        _ = fixture.spawn("a")
        #expect(fixture.tree.handle(.whoami, from: "boss") == .ok(fields: ["boss", ""], data: []))
        #expect(fixture.tree.handle(.whoami, from: "boss.a") == .ok(fields: ["boss.a", "boss"], data: []))
        #expect(failure(fixture.tree.handle(.whoami, from: "ghost"))?.0 == .failed)
    }
}
