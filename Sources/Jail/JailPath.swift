/// Absolute paths as the jail writes them: components joined by one "/", no "." and no trailing
/// "/". ".." is refused outright, so a destination can never climb out of the jail's root.
enum JailPath {
    enum Problem: Error, Equatable {
        case empty, relative, parentComponent

        var text: String {
            switch self {
            case .empty: "empty path"
            case .relative: "not an absolute path"
            case .parentComponent: "'..' is not allowed"
            }
        }
    }

    static func normalize(_ text: String) -> Result<String, Problem> {
        guard !text.isEmpty else { return .failure(.empty) }
        guard text.hasPrefix("/") else { return .failure(.relative) }
        var parts: [Substring] = []
        for part in text.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { return .failure(.parentComponent) }
            parts.append(part)
        }
        return .success("/" + parts.joined(separator: "/"))
    }

    /// True when `path` lies strictly below `directory` (both normalized).
    static func isInside(_ path: String, _ directory: String) -> Bool {
        if directory == "/" { return path != "/" }
        return path.hasPrefix(directory + "/")
    }

    /// `path` (normalized, absolute) under `root`.
    static func join(_ root: String, _ path: String) -> String {
        path == "/" ? root : (root == "/" ? path : root + path)
    }

    /// The directory holding `path`: "/a/b" → "/a", "/a" → "/".
    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }
}
