import Audit
import Glibc
import Ledger
@testable import Host
import MachineConfig
import Policy
import POSIX
import Testing

/// What a long-lived VM keeps in its registry directory: its host settings and its governance.
@Suite struct StateFilesTests {
    static let policy = """
        version: 1
        agent: keeper
        tools:
          exec:
            - program: /bin/true
        resources:
          vcpus: 2
          memory_mib: 512
          sub_agents: 1
        """

    @Test func hostSettingsRoundTrip() throws {
        let host = try TestHost()
        let dir = host.root + "/vms"
        var config = testMachine()
        config.commandLine = "console=ttyS0 momin.doors=1024"
        let settings = HostSettings(config, jail: .unjailed, buckets: "relative/buckets.db")
        #expect(settings.buckets?.hasPrefix("/") == true)
        try HostSettings.save(settings, in: dir)
        let loaded = try HostSettings.load(from: dir, name: "vm")
        #expect(loaded == settings)
        #expect(loaded.configuration.kernelPath == "/nonexistent/vmlinuz")
        #expect(loaded.configuration.commandLine == "console=ttyS0 momin.doors=1024")
        #expect(loaded.jail == .unjailed)
    }

    @Test func damagedHostSettingsAreNamed() throws {
        let host = try TestHost()
        let dir = host.root + "/vms"
        #expect(throws: HostError.failed("VM vm: \(dir)/host is missing")) { try HostSettings.load(from: dir, name: "vm") }
        try SmallFiles.write(dir + "/host", "kernel /k\nnospace\n")
        #expect(throws: HostError.failed("VM vm: \(dir)/host is damaged")) { try HostSettings.load(from: dir, name: "vm") }
        try SmallFiles.write(dir + "/host", "kernel /k\ncmdline x\n")
        #expect(throws: HostError.failed("VM vm: \(dir)/host lacks a field")) { try HostSettings.load(from: dir, name: "vm") }
    }

    @Test func governanceKeepsTheExactPolicyBytesTheLogAndTheLimits() throws {
        let host = try TestHost()
        let dir = host.root + "/vms"
        let path = host.root + "/keeper.yaml"
        try SmallFiles.write(path, Self.policy)
        let loaded = try LoadedPolicy.load(path: path, vcpus: 1, memoryMiB: 256)
        let governance = VMGovernance(agent: "keeper", policy: loaded, auditPath: host.root + "/audit.db")
        try VMGovernance.save(governance, in: dir)
        // Editing the original later changes nothing for the VM: it runs under its copy.
        try SmallFiles.write(path, "not: a policy\n")
        let back = try #require(try VMGovernance.load(from: dir, name: "vm"))
        #expect(back.agent == "keeper")
        #expect(back.policy?.source == Array(Self.policy.utf8))
        #expect(back.policy?.path == path)
        #expect(back.auditPath == host.root + "/audit.db")
        #expect(back.limitsPath == dir + "/limits")
        #expect(back.limits != nil)
        #expect(access(dir + "/policy.yaml", F_OK) == 0)
        // Each process that loads the governance (every momin exec and cp, the agent host)
        // takes request ids from the one counter beside the log.
        #expect(try back.requestIDs.next() == 1)
        #expect(try VMGovernance.load(from: dir, name: "vm")?.requestIDs.next() == 2)
        #expect(try governance.requestIDs.next() == 3)
        #expect(try VMGovernance(agent: "solo").requestIDs.next() == 1)
    }

    /// Every process appending to a long-lived VM's log (exec, cp, the agent host) signs with
    /// its key and witnesses every head it signs in its witness file.
    @Test func governanceKeepsTheLogsKeyAndWitnessAndItsLogWitnessesEveryHead() throws {
        let host = try TestHost()
        let dir = host.root + "/vms"
        let (audit, key, witness) = (host.root + "/audit.db", host.root + "/signer.key", host.root + "/witness")
        try VMGovernance.save(VMGovernance(agent: "w", auditPath: audit, auditKey: key, auditWitness: witness), in: dir)
        #expect(SmallFiles.read(dir + "/governance") == "agent w\naudit \(audit)\naudit-key \(key)\naudit-witness \(witness)\n")
        let back = try #require(try VMGovernance.load(from: dir, name: "vm"))
        #expect(back.auditKey == key && back.auditWitness == witness)
        try back.log?.append(batch: [.lifecycle(.vmStart(vm: "w"))])
        try back.log?.append(batch: [.lifecycle(.vmStop(vm: "w", reason: "done"))])
        let fingerprint = try AuditPublicKey.load(path: key + ".pub").fingerprint
        let heads = try AuditLog(path: audit, options: AuditLog.Options(keyPath: key)).heads()
        #expect(heads.map(\.treeSize) == [1, 2])
        #expect(SmallFiles.read(witness) == heads.map { PublishedHead(head: $0, keyFingerprint: fingerprint).json + "\n" }.joined())
    }

    @Test func aVMWithoutGovernanceHasNoneAndDamageIsAnError() throws {
        let host = try TestHost()
        let dir = host.root + "/vms"
        #expect(try VMGovernance.load(from: dir, name: "vm") == nil)
        try SmallFiles.write(dir + "/governance", "audit /a.db\n")
        #expect(throws: HostError.failed("VM vm: \(dir)/governance names no agent")) { try VMGovernance.load(from: dir, name: "vm") }
        try SmallFiles.write(dir + "/governance", "agent a\npolicy-source /p.yaml\npolicy-copy ../escape.yaml\n")
        #expect(throws: HostError.failed("VM vm: \(dir)/governance names no policy copy")) { try VMGovernance.load(from: dir, name: "vm") }
        try SmallFiles.write(dir + "/governance", "agent a\npolicy-source /p.yaml\npolicy-copy policy.yaml\n")
        try SmallFiles.write(dir + "/policy.yaml", "version: 1\nagent: a\nbogus: 1\n")
        #expect(throws: HostError.self) { try VMGovernance.load(from: dir, name: "vm") }
    }

    @Test func aPolicyMustHoldTheMachine() throws {
        let host = try TestHost()
        let path = host.root + "/keeper.yaml"
        try SmallFiles.write(path, Self.policy)
        #expect(throws: HostError.badInput("--vcpus 3 is over the policy's cap of 2 (resources.vcpus)")) {
            try LoadedPolicy.load(path: path, vcpus: 3, memoryMiB: 256)
        }
        #expect(throws: HostError.badInput("--memory 1024 MiB is over the policy's cap of 512 MiB (resources.memory_mib)")) {
            try LoadedPolicy.load(path: path, vcpus: 1, memoryMiB: 1024)
        }
        let loaded = try LoadedPolicy.load(path: path, vcpus: 1, memoryMiB: 256)
        // What it holds for sub-agents: its resources less the VM's own share.
        #expect(HostResources.budget(loaded.policy, testMachine(vcpus: 1, memoryMiB: 256))
                == SubAgentRequest(maxCount: 1, cpus: 1, memoryMiB: 256))
        #expect(HostResources.budget(nil, testMachine()) == .none)
    }
}

/// Jail uid claims name their process by pid and start time.
@Suite struct JailIdentityTests {
    @Test func aUidClaimedByAPidNowRunningAnotherProcessIsFreeAgain() throws {
        let host = try TestHost()
        let identities = try JailIdentities.onThisHost(host.environment)
        try #require(mkdir(identities.directory, 0o700) == 0)
        let me = getpid()
        let started = try #require(ProcessStat.startTime(of: me))
        // Our pid, but recorded with another start time: the process that claimed 61000 is
        // gone and its pid was reused.
        try SmallFiles.write(identities.directory + "/61000", "\(me) \(started + 1)\n")
        try SmallFiles.write(identities.directory + "/61001", "\(me) \(started)\n")
        // A claim from before start times were kept: the pid alone holds it.
        try SmallFiles.write(identities.directory + "/61002", "\(me)\n")
        #expect(try identities.claim() == 61000)
        #expect(SmallFiles.read(identities.directory + "/61000") == "\(me) \(started)\n")
        #expect(try identities.claim() == 61003)
        #expect(!JailIdentities.isHeld("garbage\n") && !JailIdentities.isHeld("1 2 3\n") && !JailIdentities.isHeld("-4 5\n"))
    }
}
