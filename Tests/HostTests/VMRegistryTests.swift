import Glibc
@testable import Host
import Testing

@Suite struct VMRegistryTests {
    @Test func namesAreWhatADirectoryEntryAndALogLineCanHold() {
        for good in ["a", "triage", "triage.auth", "run-42", "A_b.9", String(repeating: "x", count: 64)] {
            #expect(throws: Never.self) { try VMRegistry.validate(good) }
        }
        for bad in ["", ".hidden", "-flag", "a/b", "../up", "a b", "é", String(repeating: "x", count: 65), "a\nb"] {
            #expect(throws: HostError.self) { try VMRegistry.validate(bad) }
        }
        #expect(throws: HostError.badInput("VM name 'a/b' is invalid: use 1–64 letters, digits, '.', '_' or '-', not starting with '.' or '-'")) {
            try VMRegistry.validate("a/b")
        }
    }

    @Test func aDirectoryWithoutALiveVMMIsStaleAndNoDirectoryIsAbsent() throws {
        let host = try TestHost()
        let registry = try VMRegistry.open(host.environment)
        #expect(registry.state("vm") == .absent)
        mkdir(registry.directory("vm"), 0o700)
        #expect(registry.state("vm") == .stale("no pid recorded"))
        // This test process is alive, but it is not the VM's momin-vmm: a reused pid.
        try SmallFiles.write(registry.directory("vm") + "/pid", "\(getpid())\n")
        #expect(registry.state("vm") == .stale("pid \(getpid()) is no longer its momin-vmm"))
        try SmallFiles.write(registry.directory("vm") + "/pid", "999999999\n")
        #expect(registry.state("vm") == .stale("momin-vmm (pid 999999999) is gone"))
    }

    @Test func descendantsComeDeepestFirst() throws {
        let host = try TestHost()
        let registry = try VMRegistry.open(host.environment)
        for (name, parent) in [("p", nil), ("p.a", "p"), ("p.a.x", "p.a"), ("p.b", "p"), ("q", nil)] as [(String, String?)] {
            mkdir(registry.directory(name), 0o700)
            if let parent { try SmallFiles.write(registry.directory(name) + "/parent", parent + "\n") }
        }
        #expect(registry.descendants(of: "p") == ["p.a.x", "p.a", "p.b"])
        #expect(registry.descendants(of: "q").isEmpty)
        #expect(registry.parent(of: "p.a.x") == "p.a")
        #expect(registry.names() == ["p", "p.a", "p.a.x", "p.b", "q"])
        registry.remove("p.a")
        #expect(registry.state("p.a") == .absent)
        #expect(registry.names() == ["p", "p.a.x", "p.b", "q"])
    }
}
