/// A layer entry's path made safe to apply (pure): absolute paths become relative to the image's
/// root (as GNU tar strips a leading `/`), `.` and empty components go, and `..` anywhere is
/// refused rather than resolved, so that no entry names anything outside the tree.
public enum LayerPath {
    /// ext4's longest name (EXT4_NAME_LEN).
    public static let componentLimit = 255
    /// OCI image-spec layer.md, "Whiteouts".
    public static let whiteoutPrefix = ".wh."
    public static let opaqueMarker = ".wh..wh..opq"

    /// The path's components (empty: the root itself), and whether it was absolute.
    public static func normalize(_ path: String) throws(LayerPathError) -> (components: [String], absolute: Bool) {
        guard !path.utf8.contains(0) else { throw LayerPathError("it holds a NUL byte") }
        var components: [String] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            guard part != ".." else { throw LayerPathError("it has a '..' component") }
            guard part.utf8.count <= componentLimit else {
                throw LayerPathError("a component is \(part.utf8.count) bytes, over ext4's \(componentLimit)")
            }
            components.append(String(part))
        }
        return (components, path.hasPrefix("/"))
    }

    /// What an entry named `name` (its last component) does (OCI image-spec layer.md, "Whiteouts").
    public enum Role: Equatable, Sendable {
        case entry
        /// `.wh.NAME`: NAME from the layers below is deleted.
        case whiteout(String)
        /// `.wh..wh..opq`: the directory's contents from the layers below are deleted.
        case opaque
    }

    public static func role(of name: String) throws(LayerPathError) -> Role {
        if name == opaqueMarker { return .opaque }
        guard name.hasPrefix(whiteoutPrefix) else { return .entry }
        guard !name.hasPrefix(whiteoutPrefix + whiteoutPrefix) else { throw LayerPathError("\(name) is not an OCI whiteout") }
        let target = String(name.dropFirst(whiteoutPrefix.count))
        guard !target.isEmpty, target != ".", target != ".." else { throw LayerPathError("whiteout \(name) names nothing") }
        return .whiteout(target)
    }
}

/// Why a layer path was refused, as a phrase.
public struct LayerPathError: Error, Equatable, Sendable {
    public var why: String
    public init(_ why: String) { self.why = why }
}
