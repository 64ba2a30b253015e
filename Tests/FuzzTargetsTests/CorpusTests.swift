import FuzzTargets
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

    static func files(_ directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted()
    }

    @Test(arguments: FuzzTarget.allCases) func everyCorpusInputPasses(_ target: FuzzTarget) throws {
        let names = Self.files(Self.corpus + "/" + target.rawValue)
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
        #expect(Seeds.seeds(for: .doorsFrame).count >= 8 && Seeds.seeds(for: .handsCall).count == 9)
        #expect(Seeds.seeds(for: .virtqueue).allSatisfy { $0.count == 2 + 0x8000 })
    }
}
