import Audit
import Foundation
@testable import Gateway
import Glibc
@testable import GuestClientTestSupport
import Merkle
import Synchronization
import Testing

/// Request ids shared through a file beside the log: what several processes appending to one
/// log (a long-lived VM's exec and cp calls, its agent host) use so that no id repeats.
@Suite struct RequestNumbersTests {
    @Test func numbersSharedThroughTheLogNeverRepeatAcrossHoldersAndThreads() throws {
        let directory = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = directory + "/audit.db"
        // Two holders, as two processes would be: each opens and locks the file per id.
        let holders = [RequestNumbers.shared(withLog: log), RequestNumbers.shared(withLog: log)]
        let taken = Mutex<[UInt64]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for _ in 0..<25 {
                guard let id = try? holders[worker % 2].next() else { return }
                taken.withLock { $0.append(id) }
            }
        }
        #expect(taken.withLock { $0.sorted() } == Array(1...200))
    }

    @Test func aNewCounterCarriesOnAfterTheGreatestIdInTheLog() throws {
        let directory = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/audit.db"
        let log = try AuditLog(path: path, options: AuditLog.Options(keyPath: directory + "/audit.key"))
        _ = try log.append(contentsOf: [
            .toolRequest(ToolRequest(requestID: 41, agent: "a", tool: "exec", arguments: [])),
            .resultDigest(ResultDigest(requestID: 41, status: 0, byteCount: 0, sha256: try #require(MerkleHash(bytes: [UInt8](repeating: 0, count: 32))))),
            .toolRequest(ToolRequest(requestID: 7, agent: "a", tool: "exec", arguments: [])),
        ])
        try log.close()
        let numbers = RequestNumbers.shared(withLog: path)
        #expect(try numbers.next() == 42)
        #expect(try numbers.next() == 43)
        // In memory, numbers start at 1 whatever the log holds.
        #expect(try RequestNumbers().next() == 1)
    }

    @Test func aDamagedCounterIsAnErrorNamingItNeverAFreshStart() throws {
        let directory = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = directory + "/audit.db"
        try "momin-request-ids 1\nlast twelve\n".write(toFile: log + ".ids", atomically: true, encoding: .utf8)
        #expect {
            _ = try RequestNumbers.shared(withLog: log).next()
        } throws: { error in
            "\(error)".contains(log + ".ids is damaged")
        }
    }
}
