import Policy
import Testing

/// A file system made of a table: directories, files and symlinks. It resolves paths the way the
/// guest's resolver must (realpath -m): symlinks followed, missing tails kept, loops refused.
struct FakeFileSystem: PathResolver {
    enum Entry: Equatable {
        case directory
        case file
        case symlink(String)
    }

    var entries: [String: Entry] = ["/": .directory]

    /// Adds the entry and any missing parent directories.
    mutating func add(_ path: String, _ entry: Entry) {
        var parent = ""
        for part in path.split(separator: "/").dropLast() {
            parent += "/" + part
            if entries[parent] == nil { entries[parent] = .directory }
        }
        entries[path] = entry
    }

    func canonicalPath(_ path: String, followFinalSymlink: Bool) -> String? {
        var pending = Array(path.split(separator: "/", omittingEmptySubsequences: true).map(String.init).reversed())
        var resolved: [String] = []
        var links = 0
        var missing = false
        while let part = pending.popLast() {
            if part == "." || part.isEmpty { continue }
            if part == ".." {
                _ = resolved.popLast()
                continue
            }
            if missing {
                resolved.append(part)
                continue
            }
            let candidate = "/" + (resolved + [part]).joined(separator: "/")
            switch entries[candidate] {
            case nil:
                missing = true
                resolved.append(part)
            case .directory:
                resolved.append(part)
            case .file:
                if pending.contains(where: { $0 != "." && !$0.isEmpty }) { return nil }  // ENOTDIR
                resolved.append(part)
            case .symlink(let target):
                if pending.isEmpty && !followFinalSymlink {
                    resolved.append(part)
                    continue
                }
                links += 1
                if links > 40 { return nil }  // ELOOP
                if target.hasPrefix("/") { resolved = [] }
                pending.append(contentsOf: target.split(separator: "/", omittingEmptySubsequences: true).map(String.init).reversed())
            }
        }
        return "/" + resolved.joined(separator: "/")
    }
}

/// An independent, simple lexical normaliser to check `PathNormalization` against.
func referenceNormalize(_ path: String) -> String? {
    guard path.hasPrefix("/"), !path.contains("\0") else { return nil }
    var stack: [Substring] = []
    for part in path.split(separator: "/", omittingEmptySubsequences: true) {
        if part == "." { continue }
        if part == ".." { _ = stack.popLast() } else { stack.append(part) }
    }
    return "/" + stack.joined(separator: "/")
}

func parse(_ text: String, _ format: PolicyFormat = .yaml, file: String = "test.yaml") throws -> AgentPolicy {
    try AgentPolicy.parse(text, format: format, file: file)
}

/// The error a policy text gives, or nil when it is valid.
func parseError(_ text: String, _ format: PolicyFormat = .yaml, file: String = "bad.yaml") -> PolicyError? {
    do {
        _ = try AgentPolicy.parse(text, format: format, file: file)
        return nil
    } catch {
        return error
    }
}

/// The repository root, found from this file's place in it.
let repositoryRoot: String = {
    var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)  // Tests/PolicyTests/Support.swift
    return parts.joined(separator: "/")
}()

/// Each (body, field, message): the policy `head + body` is refused at `field` with a message
/// containing `message`.
func expectFieldErrors(_ head: String, _ cases: [(String, String, String)], sourceLocation: SourceLocation = #_sourceLocation) {
    for (body, field, message) in cases {
        let error = parseError(head + body + "\n")
        #expect(error?.field == field, "\(body): \(String(describing: error))", sourceLocation: sourceLocation)
        #expect(error?.message.contains(message) == true, "\(body): \(String(describing: error))", sourceLocation: sourceLocation)
    }
}
