import Policy
import TestRandom
import Testing

@Suite struct NormalizationTests {
    static let table: [(String, String)] = [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/./b//c/../d", "/a/b/d"),
        ("/../../etc", "/etc"),
        ("/..", "/"),
        ("//", "/"),
        ("///etc///passwd", "/etc/passwd"),
        ("/etc/passwd/", "/etc/passwd"),
        ("/etc/.", "/etc"),
        ("/etc/..", "/"),
        ("/a/b/c/../../..", "/"),
        ("/a/b/../../../../x", "/x"),
        ("/evidence/../etc/shadow", "/etc/shadow"),
        ("/a/.../b", "/a/.../b"),
        ("/a/..b/.c", "/a/..b/.c"),
        ("/é/./ü", "/é/ü"),
    ]

    @Test func lexicalNormalisation() {
        for (input, expected) in Self.table {
            #expect(PathNormalization.normalize(input) == .success(expected), "\(input)")
        }
    }

    @Test func refusedPaths() {
        #expect(PathNormalization.normalize("") == .failure(.empty))
        #expect(PathNormalization.normalize("etc/passwd") == .failure(.relative))
        #expect(PathNormalization.normalize("./x") == .failure(.relative))
        #expect(PathNormalization.normalize("../x") == .failure(.relative))
        #expect(PathNormalization.normalize("/etc/\0passwd") == .failure(.containsNUL))
        #expect(PathNormalization.normalize("/" + String(repeating: "a", count: 5000)) == .failure(.tooLong))
    }

    /// (a) normalise is idempotent and agrees with a simple reference on generated paths.
    @Test func idempotentAndAgreesWithTheReference() {
        var random = SeededGenerator(seed: 1)
        let parts = ["a", "b", "..", ".", "", "//", "...", ".a", "é", "c d"]
        for _ in 0..<5000 {
            var path = random.chance(90) ? "/" : ""
            path += (0..<Int.random(in: 0...8, using: &random)).map { _ in random.pick(parts) }.joined(separator: "/")
            if random.chance(20) { path += "/" }
            let result = PathNormalization.normalize(path)
            guard case .success(let normal) = result else {
                #expect(!path.hasPrefix("/") || path.isEmpty, "\(path) refused: \(result)")
                continue
            }
            #expect(PathNormalization.normalize(normal) == .success(normal), "\(path) → \(normal)")
            #expect(normal == referenceNormalize(path), "\(path)")
            #expect(!normal.contains("//") && !normal.contains("/./") && !normal.contains("/../"))
            #expect(normal == "/" || !normal.hasSuffix("/"))
        }
    }
}
