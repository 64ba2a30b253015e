import Doors
import GuestClient
import Policy

/// Resolves paths the way the guest's kernel will walk them, by asking the guest (Doors
/// Resolve, realpath(3) there). For a path that does not exist yet (a file about to be
/// written), the longest existing prefix is resolved and the rest kept as written, as
/// `realpath -m` does; a dangling symlink is not resolvable (a write through it would land
/// wherever it points), so the evaluator denies the call.
///
/// The answer is only as good as the moment it was given: a guest may swap a directory for a
/// symlink between this check and the call (docs/policy.md, "What stays open").
final class GuestResolver: PathResolver {
    private let client: DoorsClient

    init(client: DoorsClient) { self.client = client }

    func canonicalPath(_ path: String, followFinalSymlink: Bool) -> String? {
        guard path.hasPrefix("/") else { return nil }
        if path == "/" { return "/" }
        if followFinalSymlink {
            do { return try client.resolve(path) } catch {
                guard case .remote(let reply) = error, reply.code == .notFound else { return nil }
            }
        }
        let (parent, name) = Self.split(path)
        guard let resolvedParent = canonicalPath(parent, followFinalSymlink: true) else { return nil }
        let candidate = resolvedParent == "/" ? "/" + name : resolvedParent + "/" + name
        // Missing as a whole: the last name is yet to be created, or is a dangling symlink,
        // which must not be taken for a new name. Asked of the resolved parent (an lstat, and the
        // guest walks no symlink on the way), so a symlink in the path cannot hide one.
        if followFinalSymlink, (try? client.stat(candidate)) != nil { return nil }
        return candidate
    }

    /// "/a/b/c" → ("/a/b", "c"); "/c" → ("/", "c"). The path is normalised (no trailing slash).
    static func split(_ path: String) -> (String, String) {
        let slash = path.lastIndex(of: "/")!
        let parent = slash == path.startIndex ? "/" : String(path[..<slash])
        return (parent, String(path[path.index(after: slash)...]))
    }
}
