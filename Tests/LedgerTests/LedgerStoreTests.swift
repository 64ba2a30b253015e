import Foundation
import Glibc
import Ledger
import Synchronization
import Testing

@Suite struct LedgerStoreTests {
    static let pool = HostPool(cpus: Array(0...15), memoryMiB: 32768, gpus: ["0000:41:00.0"])
    static let small = ResourceRequest(vcpus: 1, memoryMiB: 512)

    @Test func roundTripsThroughTheFile() throws {
        let directory = TemporaryDirectory()
        let store = LedgerStore(directory: directory.path, isAlive: { _ in true })
        #expect(try store.read() == nil)
        let (grant, reaped) = try store.update(pool: Self.pool) { ledger throws(LedgerError) in
            try ledger.grant(id: "a", request: ResourceRequest(vcpus: 2, memoryMiB: 2048, gpus: .count(1),
                                                               subAgents: SubAgentRequest(maxCount: 1, cpus: 2, memoryMiB: 1024)), pid: 100)
            return try ledger.grant(id: "b \"quoted\"", parent: "a", request: Self.small, pid: 101)
        }
        #expect(reaped.isEmpty)
        #expect(grant.cpus == [2])
        let other = LedgerStore(directory: directory.path, isAlive: { _ in true })
        let read = try #require(try other.read())
        #expect(read.ledger.allGrants.map(\.id) == ["a", "b \"quoted\""])
        #expect(read.ledger.grant("a")?.subAgents.cpus == [2, 3])
        #expect(read.ledger.pool == Self.pool)
        #expect(directory.read("ledger.json")?.contains(#""cpus": "0-1""#) == true)
        // Names are written and read back whatever characters they hold.
        let odd = "ü\u{1}\n\t\\😀"
        _ = try store.update(pool: Self.pool) { ledger throws(LedgerError) in try ledger.grant(id: odd, request: Self.small, pid: 102) }
        #expect(try other.read()?.ledger.grant(odd)?.cpus == [4])
        // Nothing is left behind but the file and the lock.
        #expect(directory.read("ledger.json.tmp.\(getpid())") == nil)
    }

    @Test func twoStoresShareOneLedger() throws {
        let directory = TemporaryDirectory()
        let first = LedgerStore(directory: directory.path, isAlive: { _ in true })
        let second = LedgerStore(directory: directory.path, isAlive: { _ in true })
        _ = try first.update(pool: Self.pool) { ledger throws(LedgerError) in try ledger.grant(id: "a", request: Self.small, pid: 1) }
        let b = try second.update(pool: Self.pool) { ledger throws(LedgerError) in try ledger.grant(id: "b", request: Self.small, pid: 2) }.value
        #expect(b.cpus == [1])
        #expect {
            try first.update(pool: Self.pool) { ledger throws(LedgerError) in try ledger.grant(id: "b", request: Self.small, pid: 3) }
        } throws: { error in
            (error as? LedgerStoreError) == .refused(.duplicateID("b"))
        }
    }

    @Test func concurrentGrantsNeverShareACPU() async throws {
        let directory = TemporaryDirectory()
        let stores = [LedgerStore(directory: directory.path, isAlive: { _ in true }),
                      LedgerStore(directory: directory.path, isAlive: { _ in true })]
        let pool = Self.pool
        let request = Self.small
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<16 {
                group.addTask {
                    _ = try stores[index % 2].update(pool: pool) { ledger throws(LedgerError) in
                        try ledger.grant(id: "vm\(index)", request: request, pid: Int32(index + 1))
                    }
                }
            }
            try await group.waitForAll()
        }
        let ledger = try #require(try stores[0].read()).ledger
        #expect(ledger.allGrants.count == 16)
        #expect(Set(ledger.allGrants.flatMap(\.cpus)) == Set(0...15))
        #expect {
            try stores[1].update(pool: pool) { ledger throws(LedgerError) in try ledger.grant(id: "late", request: request, pid: 99) }
        } throws: { error in
            (error as? LedgerStoreError)?.description == #"VM "late" asks for 1 CPU, 0 are free under the host"#
        }
    }

    @Test func reapsGrantsWhoseVMMIsGone() throws {
        let directory = TemporaryDirectory()
        let dead = Mutex<Set<Int32>>([])
        let store = LedgerStore(directory: directory.path, isAlive: { grant in dead.withLock { !$0.contains(grant.pid) } })
        _ = try store.update(pool: Self.pool) { ledger throws(LedgerError) in
            try ledger.grant(id: "a", request: ResourceRequest(vcpus: 1, memoryMiB: 512, subAgents: SubAgentRequest(maxCount: 1, cpus: 1, memoryMiB: 512)), pid: 100)
            try ledger.grant(id: "b", parent: "a", request: Self.small, pid: 101)
            try ledger.grant(id: "c", request: Self.small, pid: 200)
        }
        dead.withLock { _ = $0.insert(100) }
        // A refused change still keeps the reaping.
        #expect(throws: LedgerStoreError.refused(.unknownVM("x"))) {
            try store.update(pool: Self.pool) { ledger throws(LedgerError) in try ledger.release(id: "x") }
        }
        let read = try #require(try LedgerStore(directory: directory.path, isAlive: { _ in true }).read())
        #expect(read.ledger.allGrants.map(\.id) == ["c"])
        #expect(read.reaped.isEmpty)

        dead.withLock { _ = $0.insert(200) }
        #expect(try store.read()?.reaped == ["c"])
        #expect(try store.read()?.ledger.allGrants.isEmpty == true)
    }

    @Test func theRealLivenessCheck() {
        #expect(LedgerStore.processExists(getpid()))
        // Above any pid_max (at most 2^22).
        #expect(!LedgerStore.processExists(Int32.max))
    }

    /// A grant whose pid now belongs to a process that started at another time (the kernel
    /// handed the pid out again) is gone; one with its start time, or none kept, is not.
    @Test func aReusedPidDoesNotKeepAGrantAlive() throws {
        let start = try #require(ProcessStat.startTime(of: getpid()))
        func grant(_ pidStart: UInt64?) -> Grant {
            var grant = Grant(id: "a", parent: nil, pid: getpid(), cpus: [0], memoryMiB: 1, gpus: [], subAgents: .none)
            grant.pidStart = pidStart
            return grant
        }
        #expect(LedgerStore.processRuns(grant(start)))
        #expect(LedgerStore.processRuns(grant(nil)))
        #expect(!LedgerStore.processRuns(grant(start + 1)))
    }

    @Test func startTimesAreReadPastACommandNameWithSpacesAndParentheses() {
        let fields3to22 = (3...22).map { $0 == 22 ? "987654" : "\($0)" }.joined(separator: " ")
        #expect(ProcessStat.startTime("42 (a) b (c)) " + fields3to22 + " 23 24") == 987_654)
        #expect(ProcessStat.startTime("42 (short) S 1 2") == nil)
        #expect(ProcessStat.startTime("no parenthesis") == nil)
    }

    @Test func aPidStartSurvivesTheFileAndOldFilesWithoutItStillRead() throws {
        var ledger = ResourceLedger(pool: HostPool(cpus: [0, 1], memoryMiB: 1024, gpus: []))
        _ = try ledger.grant(id: "a", request: ResourceRequest(vcpus: 1, memoryMiB: 256), pid: 10)
        try ledger.setPID(11, start: 123_456, for: "a")
        let text = ledger.encoded()
        #expect(text.contains("\"pid_start\": 123456"))
        let back = try ResourceLedger.decode(Array(text.utf8))
        #expect(back.grant("a")?.pidStart == 123_456 && back.grant("a")?.pid == 11)
        let old = text.replacingOccurrences(of: "\"pid_start\": 123456,", with: "")
        #expect(old != text)
        #expect(try ResourceLedger.decode(Array(old.utf8)).grant("a")?.pidStart == nil)
    }

    @Test func aCorruptFileIsNamedAndLeftAlone() throws {
        let directory = TemporaryDirectory()
        let store = LedgerStore(directory: directory.path, isAlive: { _ in true })
        let path = directory.path + "/ledger.json"
        let cases: [(String, String)] = [
            ("", "the file is empty"),
            ("{\"version\": 1, \"pool\": ", "at byte 23: the text ends where a value was expected"),
            ("{\"version\": 2, \"pool\": {}, \"grants\": []}", "version: version 2 is not one this build reads (1)"),
            (#"{"version": 1, "pool": {"cpus": "0-3,", "memory_mib": 1, "gpus": []}, "grants": []}"#,
             #"pool.cpus: cpulist "0-3,": item "" is empty (two commas, or a comma at an end)"#),
            (#"{"version": 1, "pool": {"cpus": "0-3", "memory_mib": 1, "gpus": []}, "grants": [], "extra": 1}"#,
             #"unknown member "extra""#),
            (#"{"version": 1, "pool": {"cpus": "0-3", "memory_mib": 100, "gpus": []}, "grants": ["#
                + #"{"id": "a", "parent": null, "pid": 1, "cpus": "0-1", "memory_mib": 1, "gpus": [], "sub_agents": {"max": 0, "cpus": "", "memory_mib": 0, "gpus": []}},"#
                + #"{"id": "b", "parent": null, "pid": 2, "cpus": "1-2", "memory_mib": 1, "gpus": [], "sub_agents": {"max": 0, "cpus": "", "memory_mib": 0, "gpus": []}}]}"#,
             #"grants: VM "b" holds cpu 1, which "a" also holds under the host"#),
        ]
        for (text, why) in cases {
            directory.write("ledger.json", text)
            #expect(throws: LedgerStoreError.corrupt(path: path, why: why)) {
                try store.update(pool: Self.pool) { _ throws(LedgerError) in }
            }
            #expect(throws: LedgerStoreError.corrupt(path: path, why: why)) { try store.read() }
            #expect(directory.read("ledger.json") == text)
        }
        #expect(LedgerStoreError.corrupt(path: path, why: "the file is empty").description
            == "ledger \(path) is corrupt: the file is empty (it was left as it is; move it away once no VM runs)")
    }

    @Test func aChangedPoolMustStillHoldTheGrants() throws {
        let directory = TemporaryDirectory()
        let store = LedgerStore(directory: directory.path, isAlive: { _ in true })
        _ = try store.update(pool: Self.pool) { ledger throws(LedgerError) in
            try ledger.grant(id: "a", request: ResourceRequest(vcpus: 4, memoryMiB: 512), pid: 1)
        }
        let larger = HostPool(cpus: Array(0...31), memoryMiB: 65536, gpus: [])
        _ = try store.update(pool: larger) { _ throws(LedgerError) in }
        #expect(try store.read()?.ledger.pool == larger)
        let smaller = HostPool(cpus: [0, 1], memoryMiB: 65536, gpus: [])
        #expect(throws: LedgerStoreError.poolChanged(path: directory.path + "/ledger.json", .cpuNotFree(vm: "a", under: nil, cpu: 2, heldBy: nil))) {
            try store.update(pool: smaller) { _ throws(LedgerError) in }
        }
    }

    @Test func aMissingDirectoryIsNamed() {
        let store = LedgerStore(directory: "/nonexistent-momin-ledger")
        #expect(throws: LedgerStoreError.cannotOpen(path: "/nonexistent-momin-ledger/ledger.lock", why: "No such file or directory")) {
            try store.read()
        }
    }
}
