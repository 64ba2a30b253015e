import Policy
import TestRandom
import Testing

@Suite struct GlobTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var pattern: String
        var text: String
        var matches: Bool
        init(_ pattern: String, _ text: String, _ matches: Bool) {
            self.pattern = pattern
            self.text = text
            self.matches = matches
        }
        var testDescription: String { "\(pattern) ~ \(text) → \(matches)" }
    }

    static let pathCases: [Case] = [
        Case("/etc/passwd", "/etc/passwd", true),
        Case("/etc/passwd", "/etc/passwd2", false),
        Case("/etc/passwd", "/etc", false),
        Case("/", "/", true),
        Case("/", "/a", false),
        Case("/*", "/", false),
        Case("/*", "/a", true),
        Case("/*", "/a/b", false),
        Case("/usr/bin/*", "/usr/bin/grep", true),
        Case("/usr/bin/*", "/usr/bin", false),
        Case("/usr/bin/*", "/usr/bin/x/y", false),
        Case("/usr/bin/*", "/usr/bin/.hidden", true),
        Case("/data/*.txt", "/data/a.txt", true),
        Case("/data/*.txt", "/data/.txt", true),
        Case("/data/*.txt", "/data/a.txt/b", false),
        Case("/data/*.txt", "/data/sub/a.txt", false),
        Case("/evidence/**", "/evidence", true),
        Case("/evidence/**", "/evidence/a", true),
        Case("/evidence/**", "/evidence/a/b/c", true),
        Case("/evidence/**", "/evidence2", false),
        Case("/evidence/**", "/evidenc", false),
        Case("/evidence/**", "/", false),
        Case("/**", "/", true),
        Case("/**", "/anything/at/all", true),
        Case("/a/**/z", "/a/z", true),
        Case("/a/**/z", "/a/b/c/z", true),
        Case("/a/**/z", "/a/b/c/z/d", false),
        Case("/a/**/b/**/c", "/a/x/b/y/b/c", true),
        Case("/a/**/b/**/c", "/a/x/y/c", false),
        Case("/a/**/*.log", "/a/x/y/app.log", true),
        Case("/a/**/*.log", "/a/app.log", true),
        Case("/a/**/*.log", "/a/app.logs", false),
        Case("/l?g", "/log", true),
        Case("/l?g", "/lg", false),
        Case("/l?g", "/lé g", false),
        Case("/l?g", "/lég", true),
        Case("/[abc]x", "/bx", true),
        Case("/[abc]x", "/dx", false),
        Case("/[a-c]x", "/cx", true),
        Case("/[!a-c]x", "/cx", false),
        Case("/[!a-c]x", "/dx", true),
        Case("/[^a-c]x", "/éx", true),
        Case("/[]]", "/]", true),
        Case("/[a-]", "/-", true),
        Case("/\\*", "/*", true),
        Case("/\\*", "/a", false),
        Case("/case-*/report-?.md", "/case-12/report-3.md", true),
        Case("/case-*/report-?.md", "/case-12/report-33.md", false),
    ]

    @Test(arguments: pathCases) func pathGlobs(_ c: Case) throws {
        let glob = try Glob(c.pattern, kind: .path)
        #expect(glob.matches(c.text) == c.matches)
    }

    static let textCases: [Case] = [
        Case("*", "", true),
        Case("*", "/etc/passwd", true),
        Case("-n", "-n", true),
        Case("-n", "-nv", false),
        Case("-[inc]", "-i", true),
        Case("-[inc]", "-f", false),
        Case("-[inc]", "-in", false),
        Case("--max-count=[0-9]*", "--max-count=12", true),
        Case("--max-count=[0-9]*", "--max-count=", false),
        Case("a*b*c", "aXbYbZc", true),
        Case("a*b*c", "aXbYbZ", false),
        Case("C.*", "C.UTF-8", true),
        Case("[/]x", "/x", true),
        Case("\\path:x", "path:x", true),
    ]

    @Test(arguments: textCases) func textGlobs(_ c: Case) throws {
        let glob = try Glob(c.pattern, kind: .text)
        #expect(glob.matches(c.text) == c.matches)
    }

    @Test func namespaceGlobs() throws {
        let glob = try Glob("cases/*/findings", kind: .namespace)
        #expect(glob.matches("cases/42/findings"))
        #expect(!glob.matches("cases/42/x/findings"))
        #expect(!glob.matches("cases/findings"))
        let tree = try Glob("intel/**", kind: .namespace)
        #expect(tree.matches("intel"))
        #expect(tree.matches("intel/a/b"))
        #expect(!tree.matches("intelligence"))
    }

    static let invalid: [(String, Glob.Kind, String)] = [
        ("", .path, "is empty"),
        ("etc/passwd", .path, "must be an absolute path"),
        ("/a//b", .path, "has an empty segment"),
        ("/a/", .path, "has an empty segment"),
        ("/a/./b", .path, "has a \".\" or \"..\" segment"),
        ("/a/../b", .path, "has a \".\" or \"..\" segment"),
        ("/a/x**", .path, "\"**\" must be a whole segment"),
        ("/[", .path, "unterminated character class"),
        ("/[abc", .path, "unterminated character class"),
        ("/[z-a]", .path, "reversed range"),
        ("/[+-0]", .path, "has \"/\" in a character class"),
        ("/[é]", .path, "non-ASCII"),
        ("/a\\", .path, "lone \"\\\""),
        ("[", .text, "unterminated character class"),
        ("/ns", .namespace, "must not start with \"/\""),
    ]

    @Test func invalidPatternsAreRefusedWithTheReason() {
        for (pattern, kind, reason) in Self.invalid {
            do {
                _ = try Glob(pattern, kind: kind)
                Issue.record("\(pattern) compiled")
            } catch {
                #expect(error.message.contains(reason), "\(pattern): \(error.message)")
            }
        }
    }

    /// An obviously correct, exponential matcher: path globs against generated paths.
    @Test func agreesWithAReferenceMatcherOnGeneratedCases() throws {
        var random = SeededGenerator(seed: 0x61_6C_6F_62)
        let patternSegments = ["a", "b", "*", "?", "**", "a*", "*b", "[ab]", "[!a]", "a?"]
        let pathSegments = ["a", "b", "ab", "ba", "c", "aab"]
        for _ in 0..<5000 {
            let pattern = "/" + (0..<Int.random(in: 1...4, using: &random)).map { _ in random.pick(patternSegments) }.joined(separator: "/")
            let path = "/" + (0..<Int.random(in: 0...5, using: &random)).map { _ in random.pick(pathSegments) }.joined(separator: "/")
            let normalPath = path == "/" ? "/" : path
            let glob = try Glob(pattern, kind: .path)
            let expected = referenceMatch(Array(pattern.split(separator: "/").map(String.init)), Array(normalPath.split(separator: "/").map(String.init)))
            #expect(glob.matches(normalPath) == expected, "\(pattern) ~ \(normalPath)")
        }
    }
}

/// Segments: "**" any number of segments; otherwise one segment by `referenceSegment`.
func referenceMatch(_ pattern: [String], _ path: [String]) -> Bool {
    guard let first = pattern.first else { return path.isEmpty }
    if first == "**" {
        // Collapsed like the compiler does: "**/**" is "**".
        return (0...path.count).contains { referenceMatch(Array(pattern.dropFirst()), Array(path.dropFirst($0))) }
    }
    guard let segment = path.first else { return false }
    return referenceSegment(Array(first), Array(segment)) && referenceMatch(Array(pattern.dropFirst()), Array(path.dropFirst()))
}

/// One segment: "*" any run, "?" one character, "[ab]"/"[!a]" classes of single letters.
func referenceSegment(_ p: [Character], _ s: [Character]) -> Bool {
    guard let c = p.first else { return s.isEmpty }
    switch c {
    case "*":
        return (0...s.count).contains { referenceSegment(Array(p.dropFirst()), Array(s.dropFirst($0))) }
    case "?":
        return !s.isEmpty && referenceSegment(Array(p.dropFirst()), Array(s.dropFirst()))
    case "[":
        let close = p.firstIndex(of: "]")!
        var members = Array(p[1..<close])
        let negated = members.first == "!"
        if negated { members.removeFirst() }
        guard let x = s.first, members.contains(x) != negated else { return false }
        return referenceSegment(Array(p[(close + 1)...]), Array(s.dropFirst()))
    default:
        return s.first == c && referenceSegment(Array(p.dropFirst()), Array(s.dropFirst()))
    }
}
