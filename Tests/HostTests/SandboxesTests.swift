import APIServer
import Foundation
import Glibc
import Host
import Images
import POSIX
import Testing

/// `momin serve`'s sandboxes over the Host library, with the fake momin-vmm: which are its own,
/// adoption by a restarted server, and the idle stop.
@Suite struct SandboxesTests {
    /// A detached VM, as `momin start` leaves one, with `record` (momin serve's) in its directory.
    func start(_ name: String, on host: TestHost, record: String?) throws -> HostedVM {
        var launch = HostedVM.Launch(name: name)
        launch.jail = .unjailed
        launch.detached = true
        let hosted = try HostedVM.launch(launch, config: testMachine(), registry: try VMRegistry.open(host.environment),
                                         environment: host.environment) { dir throws(HostError) in
            if let record { try? record.write(toFile: dir + "/api.json", atomically: true, encoding: .utf8) }
        }
        #expect(host.waitForVMM(hosted.vm.pid) != nil)
        return hosted
    }

    func sandboxes(_ host: TestHost, idle: Double = 1800) throws -> Sandboxes {
        var settings = Sandboxes.Configuration()
        settings.idleSeconds = idle
        return try Sandboxes(environment: host.environment, images: ImageStore(root: host.root + "/images"), configuration: settings)
    }

    @Test func aRestartedServerAdoptsItsSandboxesAndStopsThemOnceIdle() throws {
        let host = try TestHost()
        let managed = try start("managed", on: host, record: #"{"idle_timeout_seconds":60,"created_by":"uid=0(root) pid=1 via momin serve"}"#)
        let other = try start("other", on: host, record: nil)
        defer { managed.halt(); other.halt() }
        let server = try sandboxes(host)
        #expect(server.adopt() == ["managed"])
        let listed = server.list()
        #expect(listed.map(\.name) == ["managed", "other"])
        #expect(listed.map(\.managed) == [true, false])
        #expect(listed[0].createdBy == "uid=0(root) pid=1 via momin serve")
        #expect(listed[0].idleTimeoutSeconds == 60)
        #expect(listed[0].state == "running" && listed[0].pid == managed.vm.pid)

        // Idle time counts from the adoption: not yet past 60 s.
        let now = MonotonicClock.nanoseconds()
        #expect(server.stopIdle(now: now + 59_000_000_000).isEmpty)
        #expect(server.stopIdle(now: now + 61_000_000_000) == ["managed"])
        #expect(host.registry.state("managed") == .absent)
        #expect(eventually { !managed.vm.isRunning })
        // What the server did not create is never stopped for being idle.
        #expect(server.stopIdle(now: now + 1_000_000_000_000).isEmpty)
        #expect(host.registry.state("other") == .running(pid: other.vm.pid))
    }

    /// A caller other than the server's owner (a group member, a TCP client by its token's name)
    /// sees and uses only what it created; the rest is "not found" to it. The owner sees everything.
    @Test func aGroupMemberSeesOnlyItsOwnSandboxes() throws {
        let host = try TestHost()
        let mine = try start("mine", on: host, record: #"{"idle_timeout_seconds":60,"created_by":"uid=4242","creator_uid":4242}"#)
        let theirs = try start("theirs", on: host, record: #"{"idle_timeout_seconds":60,"created_by":"uid=777","creator_uid":777}"#)
        let owners = try start("owners", on: host, record: nil)
        // Made over TCP with token "ci", whose name is no uid: the local uid 4242 does not see it.
        let ci = try start("ci", on: host, record: #"{"idle_timeout_seconds":60,"created_by":"token ci","creator_token":"ci"}"#)
        defer { mine.halt(); theirs.halt(); owners.halt(); ci.halt() }
        let server = try sandboxes(host)
        let member = Caller(uid: 4242, gid: 100, pid: 1, user: nil, isOwner: false)
        let owner = Caller(uid: getuid(), gid: getgid(), pid: 1, user: nil, isOwner: true)
        #expect(server.list(for: member).map(\.name) == ["mine"])
        #expect(server.list(for: owner).map(\.name) == ["ci", "mine", "owners", "theirs"])
        #expect(server.list(for: .token("ci", peer: "127.0.0.1:1")).map(\.name) == ["ci"])
        #expect(server.list(for: .token("other", peer: "127.0.0.1:1")).isEmpty)
        #expect(try server.get("mine", for: member).name == "mine")
        for name in ["theirs", "owners"] {
            #expect(throws: Problem(status: 404, title: "not found", detail: "no sandbox named \(name)")) { try server.get(name, for: member) }
            #expect(throws: Problem(status: 404, title: "not found", detail: "no sandbox named \(name)")) {
                try server.stop(name, reason: "test", caller: member)
            }
            #expect(throws: Problem(status: 404, title: "not found", detail: "no sandbox named \(name)")) {
                try server.run(name, RunCommand(argv: ["true"]), caller: member) { _ in }
            }
        }
        #expect(host.registry.state("theirs") == .running(pid: theirs.vm.pid))
    }

    @Test func aStaleSandboxIsCleanedWhenAdopted() throws {
        let host = try TestHost()
        let hosted = try start("gone", on: host, record: #"{"idle_timeout_seconds":60,"created_by":"x"}"#)
        kill(hosted.vm.pid, SIGKILL)
        #expect(eventually { !hosted.vm.isRunning })
        let server = try sandboxes(host)
        #expect(server.adopt().isEmpty)
        #expect(host.registry.state("gone") == .absent)
    }
}
