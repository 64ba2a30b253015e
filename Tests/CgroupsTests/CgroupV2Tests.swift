import Cgroups
import Foundation
import Testing

/// The cgroup v2 steps against a fake hierarchy: plain files where the kernel would have its
/// control files (the real one is exercised in the rig).
@Suite struct CgroupV2Tests {
    final class FakeMount {
        let root: String
        init(controllers: String = "cpuset cpu io memory hugetlb pids rdma misc\n") throws {
            root = NSTemporaryDirectory() + "momin-cgroup-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: false)
            try write("cgroup.controllers", controllers)
            try write("cgroup.subtree_control", "")
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }
        func write(_ relative: String, _ text: String) throws {
            let path = root + "/" + relative
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try text.write(toFile: path, atomically: false, encoding: .utf8)
        }
        func read(_ relative: String) throws -> String { try String(contentsOfFile: root + "/" + relative, encoding: .utf8) }
        /// The files the kernel makes in a new cgroup.
        func makeGroup(_ relative: String, swap: Bool = true) throws {
            for file in ["cgroup.subtree_control", "cgroup.procs", "cpu.max", "memory.max", "pids.max", "cpuset.cpus"]
                + (swap ? ["memory.swap.max"] : []) {
                try write(relative + "/" + file, "")
            }
        }
    }

    @Test func theLimitsOfAVM() {
        let limits = CgroupLimits.forVM(vcpus: 2, memoryMiB: 512, cpuSet: [2, 3])
        #expect(limits.files.map(\.name) == ["cpu.max", "memory.max", "memory.swap.max", "pids.max", "cpuset.cpus"])
        #expect(limits.files.map(\.value) == ["200000 100000", "\((512 + 64) << 20)", "0", "18", "2-3"])
    }

    @Test func aParentIsPreparedAndAVMGetsItsLimits() throws {
        let fake = try FakeMount()
        try fake.makeGroup("momin")
        let cgroups = CgroupV2(mount: fake.root)
        try cgroups.prepareParent()
        #expect(try fake.read("cgroup.subtree_control") == "+cpu +memory +pids +cpuset")
        #expect(try fake.read("momin/cgroup.subtree_control") == "+cpu +memory +pids +cpuset")
        try fake.makeGroup("momin/triage", swap: false)
        let dir = try cgroups.createVM("triage", limits: .forVM(vcpus: 1, memoryMiB: 256, cpuSet: [0]))
        #expect(dir == fake.root + "/momin/triage")
        #expect(try fake.read("momin/triage/cpu.max") == "100000 100000")
        #expect(try fake.read("momin/triage/memory.max") == "\(320 << 20)")
        #expect(try fake.read("momin/triage/pids.max") == "17")
        #expect(try fake.read("momin/triage/cpuset.cpus") == "0")
        try cgroups.attach(pid: 4242, toVM: "triage")
        #expect(try fake.read("momin/triage/cgroup.procs") == "4242")
    }

    @Test func controllersAlreadyEnabledAreNotWrittenAgain() throws {
        let fake = try FakeMount()
        try fake.write("cgroup.subtree_control", "cpu memory pids cpuset\n")
        try fake.makeGroup("momin")
        try fake.write("momin/cgroup.subtree_control", "cpu memory\n")
        try CgroupV2(mount: fake.root).prepareParent()
        #expect(try fake.read("cgroup.subtree_control") == "cpu memory pids cpuset\n")
        #expect(try fake.read("momin/cgroup.subtree_control") == "+pids +cpuset")
    }

    @Test func aHostWithoutCgroupV2IsRefusedSayingWhy() throws {
        let dir = NSTemporaryDirectory() + "momin-cgroup-v1-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: CgroupError.self) { try CgroupV2(mount: dir).prepareParent() }
        #expect { try CgroupV2(mount: dir).prepareParent() } throws: { error in
            "\(error)".contains("cgroup v2 is not mounted at \(dir)")
        }
        let fake = try FakeMount(controllers: "cpu io memory\n")
        #expect { try CgroupV2(mount: fake.root).prepareParent() } throws: { error in
            "\(error)".contains("lacks the pids, cpuset controller(s)")
        }
    }

    @Test func aCgroupStillHoldingProcessesIsNotReused() throws {
        let fake = try FakeMount()
        try fake.makeGroup("momin/busy")
        try fake.write("momin/busy/cgroup.procs", "77\n78\n")
        do {
            _ = try CgroupV2(mount: fake.root).createVM("busy", limits: .forVM(vcpus: 1, memoryMiB: 128))
            Issue.record("a cgroup with processes was reused")
        } catch {
            #expect(error.description.contains("already holds processes (77 78)"))
        }
        for bad in ["", "..", "a/b"] {
            #expect(throws: CgroupError.self) { _ = try CgroupV2(mount: fake.root).createVM(bad, limits: .forVM(vcpus: 1, memoryMiB: 1)) }
        }
    }

    @Test func oomKillsAreReadFromMemoryEvents() throws {
        let fake = try FakeMount()
        try fake.write("momin/vm/memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n")
        #expect(CgroupV2(mount: fake.root).oomKills(ofVM: "vm") == 1)
        #expect(CgroupV2(mount: fake.root).oomKills(ofVM: "absent") == nil)
    }
}
