import Devices
@testable import FuzzTargets
import Glibc
import POSIX
import Testing

/// Every input in the committed corpus (Tests/fuzz/corpus/TARGET/: the seeds, and every input
/// a fuzzer once crashed on, named crash-*), through its target, without a sanitizer: a
/// property that broke once stays checked in every `swift test`.
@Suite struct CorpusTests {
    static let corpus: String = {
        var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)  // Tests/FuzzTargetsTests/CorpusTests.swift
        return parts.joined(separator: "/") + "/Tests/fuzz/corpus"
    }()

    @Test(arguments: FuzzTarget.allCases) func everyCorpusInputPasses(_ target: FuzzTarget) throws {
        let names = try FileIO.listDirectory(Self.corpus + "/" + target.rawValue).filter { !$0.hasPrefix(".") }
        // The seeds are committed as the writer makes them.
        let seeds = Seeds.seeds(for: target)
        #expect(names.filter { $0.hasPrefix("seed-") }.count == seeds.count)
        for (index, seed) in seeds.enumerated() {
            #expect(try FileIO.readFile(Self.corpus + "/" + target.rawValue + "/seed-\(index)", limit: 1 << 20) == seed)
        }
        for name in names { target.run(try FileIO.readFile(Self.corpus + "/" + target.rawValue + "/" + name, limit: 16 << 20)) }
    }

    /// The seeds reach past the first checks: each is a valid frame, queue or policy.
    @Test func seedsAreValidInputs() throws {
        #expect(Seeds.seeds(for: .doorsFrame).count >= 8 && Seeds.seeds(for: .handsCall).count == 12)
        #expect(Seeds.seeds(for: .virtqueue).allSatisfy { $0.count == 2 + 0x8000 })
        // One seed per package-index parser, each accepted by it (both pages with their two files).
        #expect(Seeds.seeds(for: .packageIndex).map { $0.first.map { Int($0) % 6 } } == [0, 1, 2, 3, 4, 5, 5])
        #expect(Seeds.seeds(for: .packageIndex).filter { !PackageIndexTarget.accepts($0) }.isEmpty)
    }

    /// Each virtio-blk seed is accepted as the request it was made as; the queue of all of them
    /// on a read-only disk refuses exactly the writes, discards and write zeroes.
    @Test func virtioBlockSeedsAreAcceptedRequestsOfEachType() throws {
        let seeds = Seeds.seeds(for: .virtioBlock)
        try #require(seeds.count == 8)
        func kind(_ request: BlockRequest) -> String {
            switch request.operation {
            case .read(let sector, let into): "read \(sector) \(into.map(\.length))"
            case .write(let sector, let from): "write \(sector) \(from.map(\.length))"
            case .flush: "flush"
            case .getID(let into): "get-id \(into.map(\.length))"
            case .discard(let ranges): "discard \(ranges.map { "\($0.sector)+\($0.sectors)" })"
            case .writeZeroes(let ranges): "write-zeroes \(ranges.map { "\($0.sector)+\($0.sectors) \($0.unmap)" })"
            case .refused(let problem): "refused: \(problem)"
            }
        }
        let each = ["read 2 [1024]", "write 3 [512]", "flush", "get-id [20]", "discard [\"8+8\", \"32+1\"]", "write-zeroes [\"1+2 true\"]"]
        for (seed, expected) in zip(seeds, each) { #expect(VirtioBlockTarget.requests(seed).map(kind) == [expected]) }
        #expect(VirtioBlockTarget.requests(seeds[6]).map(kind) == each + ["refused: unknown request type 2"])
        #expect(VirtioBlockTarget.requests(seeds[7]).map(kind) == [
            "read 2 [1024]", "refused: OUT on a read-only disk", "flush", "get-id [20]", "refused: DISCARD on a read-only disk",
            "refused: WRITE_ZEROES on a read-only disk", "refused: unknown request type 2",
        ])
    }
}
