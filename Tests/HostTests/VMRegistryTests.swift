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

    /// A launch in progress (its directory made, momin-vmm's pid not yet recorded) is starting,
    /// not stale: momin ps running meanwhile once cleaned a sub-agent's directory and grant away
    /// in that window (a rig run: "cannot write .../hush.nap/pid").
    @Test func aVMBeingLaunchedIsStartingNotStale() throws {
        let host = try TestHost()
        let registry = try VMRegistry.open(host.environment)
        try registry.markLaunching("vm")
        mkdir(registry.directory("vm"), 0o700)
        #expect(registry.state("vm") == .starting(launcher: getpid()))
        #expect(registry.names() == ["vm"])
        // A launcher that is gone, or a pid now someone else's (another start time): stale.
        try SmallFiles.write(registry.launchingPath("vm"), "\(getpid()) 1\n")
        #expect(registry.state("vm") == .stale("no pid recorded"))
        try SmallFiles.write(registry.launchingPath("vm"), "999999999 5\n")
        #expect(registry.state("vm") == .stale("no pid recorded"))
        registry.remove("vm")
        #expect(registry.state("vm") == .absent)
        #expect(access(registry.launchingPath("vm"), F_OK) != 0)
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
