/// Lexical path normalisation: no file system, no symlinks (those are `PathResolver`'s).
public enum PathNormalization {
    /// Linux's PATH_MAX, the terminating NUL included.
    public static let maximumLength = 4095

    /// Why a path was refused before any rule was looked at.
    public enum Problem: Error, Sendable, Hashable, CustomStringConvertible {
        case empty
        case relative
        case containsNUL
        case tooLong

        public var description: String {
            switch self {
            case .empty: "is empty"
            case .relative: "is relative (only absolute paths are judged)"
            case .containsNUL: "contains a NUL byte"
            case .tooLong: "is longer than \(PathNormalization.maximumLength) bytes"
            }
        }
    }

    /// The absolute path with "//" collapsed, "." dropped, ".." taken back one segment (never
    /// above "/") and no trailing "/". A path that is already normal is returned as it is.
    public static func normalize(_ path: String) -> Result<String, Problem> {
        var text = path
        return text.withUTF8 { bytes -> Result<String, Problem> in
            if bytes.isEmpty { return .failure(.empty) }
            if bytes.count > maximumLength { return .failure(.tooLong) }
            if bytes[0] != UInt8(ascii: "/") { return .failure(.relative) }
            if bytes.contains(0) { return .failure(.containsNUL) }
            if isNormal(bytes) { return .success(path) }
            return .success(rebuild(bytes))
        }
    }

    /// No empty, "." or ".." segment and no trailing "/" (the root aside).
    static func isNormal(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        if bytes.count == 1 { return true }
        var start = 1
        while start <= bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "/") { end += 1 }
            let length = end - start
            if length == 0 { return false }
            if bytes[start] == UInt8(ascii: ".") && (length == 1 || (length == 2 && bytes[start + 1] == UInt8(ascii: "."))) {
                return false
            }
            start = end + 1
        }
        return true
    }

    private static func rebuild(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var start = 1
        while start <= bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "/") { end += 1 }
            let length = end - start
            if length == 0 || (length == 1 && bytes[start] == UInt8(ascii: ".")) {
                // "//" or "/./": nothing
            } else if length == 2 && bytes[start] == UInt8(ascii: ".") && bytes[start + 1] == UInt8(ascii: ".") {
                while let last = out.popLast(), last != UInt8(ascii: "/") {}
            } else {
                out.append(UInt8(ascii: "/"))
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<end]))
            }
            start = end + 1
        }
        if out.isEmpty { return "/" }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether a bucket namespace is well formed: "/"-separated names, none empty, "." or "..",
    /// no NUL.
    public static func isValidNamespace(_ namespace: String) -> Bool {
        if namespace.isEmpty || namespace.utf8.count > 255 { return false }
        for part in namespace.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if part.isEmpty || part.contains(0) { return false }
            if part.elementsEqual(".".utf8) || part.elementsEqual("..".utf8) { return false }
        }
        return true
    }
}

/// Answers what a normalised path really names, symlinks followed. The gateway's resolver asks
/// the guest; tests use a fake file system. The evaluator denies a call whose paths it cannot
/// resolve.
public protocol PathResolver {
    /// The canonical absolute path of `path` (absolute and normalised), like `realpath -m`:
    /// every symlink in the existing part resolved (the last component only when
    /// `followFinalSymlink`), components that do not exist yet kept as written. Nil when the
    /// path cannot be resolved: a symlink loop, a component that is not a directory, an error.
    func canonicalPath(_ path: String, followFinalSymlink: Bool) -> String?
}

/// A resolver for a file system without symlinks: every path is its own canonical path. For
/// `momin policy eval`, which has no guest to ask.
public struct LexicalResolver: PathResolver {
    public init() {}
    public func canonicalPath(_ path: String, followFinalSymlink: Bool) -> String? { path }
}
