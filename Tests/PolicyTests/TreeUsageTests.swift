import Policy
import TestRandom
import Testing

@Suite struct TreeUsageTests {
    static func budget(_ cycles: Int, seconds: UInt64 = 100, output: Int = 1000) -> TreeUsage.Budget {
        TreeUsage.Budget(cycles: cycles, wallTimeNanoseconds: seconds * 1_000_000_000, outputBytes: output)
    }

    /// root → lead → lead.worker: a call of the worker is a call of all three.
    static func tree() -> TreeUsage {
        var usage = TreeUsage(root: "root", budget: budget(10, seconds: 600), now: 0)
        #expect(usage.join("lead", parent: "root", budget: budget(8, seconds: 500), now: 0) == nil)
        #expect(usage.join("lead.worker", parent: "lead", budget: budget(5, seconds: 400), now: 0) == nil)
        return usage
    }

    @Test func aCallCountsInEveryBudgetAboveTheCaller() throws {
        var usage = Self.tree()
        for _ in 0..<3 { #expect(usage.admitCall("lead.worker", now: 1) == .counted) }
        #expect(usage.member("lead.worker")?.cycles == 3 && usage.member("lead")?.cycles == 3 && usage.member("root")?.cycles == 3)
        // The root spends 7 of its own: 10 in all, so nobody under it may call, whatever is left of theirs.
        for _ in 0..<7 { #expect(usage.admitCall("root", now: 1) == .counted) }
        #expect(usage.admitCall("lead.worker", now: 1) == .exhausted(TreeUsage.Exhausted(agent: "root", limit: .cycles(10))))
        #expect(usage.admitCall("lead", now: 1) == .exhausted(TreeUsage.Exhausted(agent: "root", limit: .cycles(10))))
        // A refused call is counted nowhere.
        #expect(usage.member("lead.worker")?.cycles == 3)
        #expect(usage.admitCall("stranger", now: 1) == .unknown)
    }

    @Test func theCallersOwnLimitIsNamedFirstAndWallTimeRunsOutAbove() throws {
        var usage = Self.tree()
        for _ in 0..<5 { #expect(usage.admitCall("lead.worker", now: 1) == .counted) }
        #expect(usage.admitCall("lead.worker", now: 1) == .exhausted(TreeUsage.Exhausted(agent: "lead.worker", limit: .cycles(5))))
        var late = Self.tree()
        #expect(late.join("lead.quick", parent: "lead", budget: Self.budget(2, seconds: 1), now: 0) == nil)
        #expect(late.admitCall("lead.quick", now: 1_000_000_000) == .exhausted(
            TreeUsage.Exhausted(agent: "lead.quick", limit: .wallTime(nanoseconds: 1_000_000_000))))
        #expect(late.admitCall("lead.worker", now: 400_000_000_000) == .exhausted(
            TreeUsage.Exhausted(agent: "lead.worker", limit: .wallTime(nanoseconds: 400_000_000_000))))
        // The worker's own 400 s are not over, but the lead's 500 s are.
        #expect(late.admitCall("lead", now: 500_000_000_000) == .exhausted(
            TreeUsage.Exhausted(agent: "lead", limit: .wallTime(nanoseconds: 500_000_000_000))))
        #expect(late.remainingWallTime("lead.quick", now: 400_000_000) == 600_000_000)
    }

    @Test func outputCountsAboveAndTheLeastRemainingBoundsTheNextCall() throws {
        var usage = Self.tree()
        #expect(usage.recordOutput("root", bytes: 900, now: 1) == .counted)
        // The worker may produce 1000, but only 100 are left to the root.
        #expect(usage.remainingOutputBytes("lead.worker") == 100)
        #expect(usage.recordOutput("lead.worker", bytes: 101, now: 1) == .exhausted(TreeUsage.Exhausted(agent: "root", limit: .outputBytes(1000))))
    }

    @Test func aChildJoinsOnlyWhenItsBudgetFitsInWhatIsLeftAbove() throws {
        var usage = Self.tree()
        for _ in 0..<4 { _ = usage.admitCall("root", now: 1) }
        // lead has 8 of its own left, but the root only 6.
        #expect(usage.join("lead.big", parent: "lead", budget: Self.budget(7), now: 1)
                == "its limits.cycles 7 is more than the 6 calls left to root, above its parent")
        #expect(usage.join("lead.big", parent: "lead", budget: Self.budget(6, output: 1001), now: 1)
                == "its limits.output_bytes 1001 is more than the 1000 bytes left to its parent lead")
        #expect(usage.join("lead.big", parent: "lead", budget: Self.budget(6, seconds: 500), now: 1)
                == "its limits.wall_time 500.0s is more than the 499.9s left to its parent lead")
        #expect(usage.join("lead.big", parent: "lead", budget: Self.budget(6, seconds: 499), now: 1) == nil)
        #expect(usage.join("x", parent: "nobody", budget: Self.budget(1), now: 1) == "nobody is not in the tree's budget")
    }

    @Test func aNameThatJoinsAgainStartsAfreshAndWhatItSpentStaysSpentAbove() throws {
        var usage = Self.tree()
        for _ in 0..<5 { _ = usage.admitCall("lead.worker", now: 1) }
        #expect(usage.join("lead.worker.sub", parent: "lead.worker", budget: Self.budget(0), now: 1) == nil)
        #expect(usage.join("lead", parent: "root", budget: Self.budget(5), now: 2) == nil)
        #expect(usage.member("lead")?.cycles == 0 && usage.member("lead.worker") == nil && usage.member("lead.worker.sub") == nil)
        #expect(usage.member("root")?.cycles == 5)
        #expect(TreeUsage(members: usage.members) == usage)
    }

    @Test func membersReadBackMustFormOneTree() {
        let b = Self.budget(1)
        let root = TreeUsage.Member(name: "r", parent: nil, budget: b, started: 0)
        #expect(TreeUsage(members: []) == nil)
        #expect(TreeUsage(members: [TreeUsage.Member(name: "c", parent: "r", budget: b, started: 0)]) == nil)
        #expect(TreeUsage(members: [root, TreeUsage.Member(name: "c", parent: "x", budget: b, started: 0)]) == nil)
        #expect(TreeUsage(members: [root, TreeUsage.Member(name: "r", parent: "r", budget: b, started: 0)]) == nil)
        #expect(TreeUsage(members: [root, TreeUsage.Member(name: "c", parent: "r", budget: b, started: 0)]) != nil)
    }

    /// Random trees making random calls, recording at most what the gateway lets through (the
    /// least remaining above the caller): no agent's count, the root's included, ever goes past
    /// its budget, and the root's count is every call anyone made.
    @Test func aTreeNeverSpendsMoreThanItsRootMay() {
        var random = SeededGenerator(seed: 0x7472_6565)
        var refusedJoins = 0
        var refusedCalls = 0
        for round in 0..<200 {
            let root = Self.budget(Int.random(in: 1...60, using: &random), output: Int.random(in: 1...5000, using: &random))
            var usage = TreeUsage(root: "r", budget: root, now: 0)
            var names = ["r"]
            var made = 0
            var passed = 0
            for step in 0..<300 {
                let now = UInt64(step) * 1_000_000
                if random.chance(10) {
                    let parent = random.pick(names)
                    let child = parent + ".c\(step)"
                    let budget = TreeUsage.Budget(cycles: Int.random(in: 0...40, using: &random),
                                                  wallTimeNanoseconds: UInt64.random(in: 1...700, using: &random) * 1_000_000_000,
                                                  outputBytes: Int.random(in: 0...3000, using: &random))
                    if usage.join(child, parent: parent, budget: budget, now: now) == nil { names.append(child) } else { refusedJoins += 1 }
                    continue
                }
                let caller = random.pick(names)
                guard case .counted = usage.admitCall(caller, now: now) else {
                    refusedCalls += 1
                    continue
                }
                made += 1
                let allowed = usage.remainingOutputBytes(caller) ?? 0
                let bytes = min(allowed, Int.random(in: 0...400, using: &random))
                passed += bytes
                _ = usage.recordOutput(caller, bytes: bytes, now: now)
            }
            for member in usage.members {
                #expect(member.cycles <= member.budget.cycles, "round \(round): \(member.name) made \(member.cycles) calls")
                #expect(member.outputBytes <= member.budget.outputBytes, "round \(round): \(member.name) took \(member.outputBytes) bytes")
            }
            #expect(usage.member("r")?.cycles == made && made <= root.cycles, "round \(round)")
            #expect(usage.member("r")?.outputBytes == passed && passed <= root.outputBytes, "round \(round)")
        }
        // Both sides of the property are reached.
        #expect(refusedJoins > 100 && refusedCalls > 1000, "\(refusedJoins) joins, \(refusedCalls) calls refused")
    }
}
