import Testing
@testable import Jail

@Suite struct ProcStatusTests {
    let jailed = """
        Name:\tmomin-vmm
        Uid:\t61234\t61234\t61234\t61234
        Gid:\t61234\t61234\t61234\t61234
        Groups:\t
        CapInh:\t0000000000000000
        CapPrm:\t0000000000000000
        CapEff:\t0000000000000000
        CapBnd:\t0000000000000000
        CapAmb:\t0000000000000000
        NoNewPrivs:\t1
        """

    @Test func aFullyJailedProcessHasNoProblems() {
        #expect(ProcStatus.problems(jailed, uid: 61234, gid: 61234).isEmpty)
    }

    @Test func eachDifferenceIsNamed() {
        let leaky = jailed.replacingOccurrences("CapBnd:\t0000000000000000", "CapBnd:\t000001ffffffffff")
            .replacingOccurrences("Groups:\t", "Groups:\t0 27")
            .replacingOccurrences("Uid:\t61234\t61234\t61234\t61234", "Uid:\t61234\t0\t61234\t61234")
            .replacingOccurrences("NoNewPrivs:\t1", "NoNewPrivs:\t0")
        #expect(ProcStatus.problems(leaky, uid: 61234, gid: 61234) == [
            "Uid is 61234 0 61234 61234, not 61234", "Groups is 0 27, not empty", "CapBnd is 000001ffffffffff",
            "NoNewPrivs is 0, not 1",
        ])
        #expect(ProcStatus.problems("Name:\tx", uid: 1, gid: 1).first == "no Uid line")
    }

    @Test func waitStatusesDecode() {
        #expect(Supervisor.outcome(3 << 8) == .exited(3))
        #expect(Supervisor.outcome(9) == .killed(9))
        #expect(Supervisor.outcome(0) == .exited(0))
    }

    @Test func namespaceNames() {
        #expect(Namespaces.names(network: .new) == "mount, pid, ipc, uts, net")
        #expect(Namespaces.names(network: .host) == "mount, pid, ipc, uts")
    }

    @Test func paths() {
        #expect(JailPath.join("/run/jail", "/bin/x") == "/run/jail/bin/x")
        #expect(JailPath.parent("/bin/x") == "/bin")
        #expect(JailPath.parent("/x") == "/")
        #expect(JailPath.isInside("/ab", "/a") == false)
        #expect(JailPath.isInside("/a/b", "/a"))
    }
}

extension String {
    /// Plain substring replacement, without Foundation.
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
