import Glibc
@testable import Host
import Ledger
import MachineConfig
import Testing

/// Launching a VM the way every launch goes (registry, grant, jail, momin-vmm) and halting it,
/// with a fake momin-vmm; and momin-vmm's preflight answers as the host reads them.
@Suite(.serialized) struct LaunchTests {
    @Test func aLaunchedVMIsRegisteredGrantedAndRunningAndHaltGivesItAllBack() throws {
        let host = try TestHost()
        let registry = try VMRegistry.open(host.environment)
        var launch = HostedVM.Launch(name: "vm")
        launch.jail = .unjailed
        let hosted = try HostedVM.launch(launch, config: testMachine(vcpus: 2, memoryMiB: 512), registry: registry,
                                         environment: host.environment)
        let arguments = try #require(host.waitForVMM(hosted.vm.pid))
        #expect(registry.state("vm") == .running(pid: hosted.vm.pid))
        #expect(registry.info("vm") == "2 512")
        #expect(host.warnings.contains { $0.hasPrefix("WARNING: --no-jail") })
        // The ledger holds the grant under the VMM's own pid, and the VMM is pinned to it.
        let grant = try #require(try HostResources(host.environment).store().read()?.ledger.grant("vm"))
        #expect(grant.pid == hosted.vm.pid)
        #expect(grant.cpus.count == 2)
        let parsed = try VMMArguments.parse(arguments)
        #expect(parsed.configuration.hostCPUs == grant.cpus)
        #expect(parsed.configuration.vsock?.socketPath == registry.socketPath("vm"))
        #expect(parsed.configuration.kernelPath == "/nonexistent/vmlinuz")

        #expect(hosted.halt() == "exited 0")
        #expect(hosted.halt() == "exited 0")  // a second halt returns the first's answer
        #expect(registry.state("vm") == .absent)
        // Released by the halt itself, not only reaped later for a dead VMM: the file says so.
        #expect(try host.ledgerOnDisk().grant("vm") == nil)
    }

    @Test func aVMStopsWhenItsLauncherGoesAwayWithoutAHalt() throws {
        let host = try TestHost()
        let registry = try VMRegistry.open(host.environment)
        var launch = HostedVM.Launch(name: "orphan")
        launch.jail = .unjailed
        var hosted: HostedVM? = try HostedVM.launch(launch, config: testMachine(), registry: registry, environment: host.environment)
        let pid = hosted!.vm.pid
        let arguments = try #require(host.waitForVMM(pid))
        #expect(try VMMArguments.parse(arguments).livenessFD == Processes.livenessDescriptor)
        // What a launcher killed with SIGKILL leaves: no halt, only its descriptors closed.
        hosted = nil
        let ended = eventually { ProcessStat.fields(of: pid)?.first.map { $0 == "Z" } ?? true }
        #expect(ended)
        if !ended { kill(pid, SIGKILL) }
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        #expect(Processes.describe(status: status) == "exited 0")
    }

    @Test func aDetachedVMHasNoLivenessPairToOutliveItsLauncher() throws {
        let host = try TestHost()
        let registry = try VMRegistry.open(host.environment)
        var launch = HostedVM.Launch(name: "detached")
        launch.jail = .unjailed
        launch.detached = true
        let hosted = try HostedVM.launch(launch, config: testMachine(), registry: registry, environment: host.environment)
        defer { hosted.halt() }
        let arguments = try #require(host.waitForVMM(hosted.vm.pid))
        #expect(try VMMArguments.parse(arguments).livenessFD == nil)
        #expect(try VMMArguments.parse(arguments).newSession)
    }

    @Test func aSecondVMOfTheSameNameIsRefusedAndAStaleOneIsCleanedFirst() throws {
        let host = try TestHost()
        let registry = try VMRegistry.open(host.environment)
        var launch = HostedVM.Launch(name: "twice")
        launch.jail = .unjailed
        let first = try HostedVM.launch(launch, config: testMachine(), registry: registry, environment: host.environment)
        defer { first.halt() }
        #expect(host.waitForVMM(first.vm.pid) != nil)
        #expect(throws: HostError.badInput("a VM named twice is already running (momin-vmm pid \(first.vm.pid)); choose another name")) {
            try HostedVM.launch(launch, config: testMachine(), registry: registry, environment: host.environment)
        }
        // A VM whose VMM died leaves its directory; the next launch under its name cleans it.
        kill(first.vm.pid, SIGKILL)
        #expect(eventually { !first.vm.isRunning })
        #expect(registry.state("twice") == .stale("momin-vmm (pid \(first.vm.pid)) is gone"))
        let second = try HostedVM.launch(launch, config: testMachine(), registry: registry, environment: host.environment)
        defer { second.halt() }
        #expect(host.waitForVMM(second.vm.pid) != nil)
        #expect(host.warnings.contains("cleaned the stale state of VM twice (momin-vmm (pid \(first.vm.pid)) is gone)"))
        #expect(registry.state("twice") == .running(pid: second.vm.pid))
    }

    @Test func aVMTheHostHasNoRoomForIsRefusedAndLeavesNothingBehind() throws {
        let host = try TestHost()
        let registry = try VMRegistry.open(host.environment)
        var launch = HostedVM.Launch(name: "big")
        launch.jail = .unjailed
        do {
            _ = try HostedVM.launch(launch, config: testMachine(vcpus: 8), registry: registry, environment: host.environment)
            Issue.record("8 vCPUs fit on a 4-CPU host")
        } catch {
            #expect(error.kind == .noRoom)
            #expect(error.message.hasPrefix("no room for VM big on this host: "))
        }
        #expect(registry.state("big") == .absent)
        #expect(try HostResources(host.environment).store().read()?.ledger.grant("big") == nil)
    }

    @Test func aPreparationThatFailsGivesEverythingBack() throws {
        let host = try TestHost()
        let registry = try VMRegistry.open(host.environment)
        var launch = HostedVM.Launch(name: "unprepared")
        launch.jail = .unjailed
        #expect(throws: HostError.badInput("audit log: refused")) {
            try HostedVM.launch(launch, config: testMachine(), registry: registry, environment: host.environment) { _ throws(HostError) in
                throw .badInput("audit log: refused")
            }
        }
        #expect(registry.state("unprepared") == .absent)
    }

    @Test func preflightRefusalsAreBadInputWithMominVMMsOwnLine() throws {
        let host = try TestHost()
        let launcher = VMMLauncher(host.environment)
        try launcher.preflight(testMachine())  // the fake passes it by default
        try host.preflight(status: 2, line: "momin-vmm: error: cannot read kernel /nonexistent/vmlinuz: No such file or directory\n")
        #expect(throws: HostError.badInput("cannot read kernel /nonexistent/vmlinuz: No such file or directory")) {
            try launcher.preflight(testMachine())
        }
        // Anything else from it is the VMM failing, not the user's input.
        try host.preflight(status: 1, line: "segmentation fault\n")
        #expect(throws: HostError.vmFailed("\(host.environment.vmm) --preflight exited 1: segmentation fault")) {
            try launcher.preflight(testMachine())
        }
        var missing = host.environment
        missing.vmm = host.root + "/bin/no-such-vmm"
        do {
            try VMMLauncher(missing).preflight(testMachine())
            Issue.record("a missing momin-vmm passed preflight")
        } catch {
            #expect(error.kind == .vmFailed)
            #expect(error.message.hasPrefix("cannot start \(missing.vmm): "))
        }
    }

    @Test func theVMMsCommandLineCarriesTheHostsSeccompMode() throws {
        var environment = HostEnvironment(runtimeDirectory: "/r", registryDirectory: "/v", momin: nil, vmm: "/bin/momin-vmm",
                                          jailer: "/bin/momin-jailer", seccomp: .trap)
        var arguments = VMMLauncher(environment).arguments(testMachine(), jail: nil, timeout: 0)
        #expect(arguments.first == "/bin/momin-vmm")
        #expect(try VMMArguments.parse(Array(arguments.dropFirst())).seccomp == .trap)
        #expect(try VMMArguments.parse(Array(arguments.dropFirst())).timeout == nil)
        environment.seccomp = .kill
        arguments = VMMLauncher(environment).arguments(testMachine(), jail: nil, timeout: 5)
        #expect(!arguments.contains("--seccomp"))
        #expect(try VMMArguments.parse(Array(arguments.dropFirst())).timeout == 5)
    }
}
