import Glibc

/// The files under one directory, found by a request's path, for `http` and `static`: the path's
/// percent-escapes decoded (RFC 3986 §2.1); a NUL, a bad escape, or a `.` or `..` segment finds
/// nothing; and neither does a path that resolves outside the root, through a symlink or not.
struct FileTree: Sendable {
    /// The root after realpath(3).
    let root: String

    /// What a path leads to: a regular file or a directory (their resolved paths), or nothing.
    enum Found: Equatable {
        case file(String)
        case directory(String)
        case none
    }

    init(root: String) throws(UsageError) {
        guard let resolved = realpath(root, nil) else { throw UsageError("--root \(root): \(String(cString: strerror(errno)))") }
        defer { free(resolved) }
        self.root = String(cString: resolved)
    }

    /// The decoded path's segments (empty ones dropped; none for `/`), and whether it ends in
    /// `/`; nil for a path no file is served at.
    static func segments(_ path: String) -> (segments: [String], trailingSlash: Bool)? {
        var bytes: [UInt8] = []
        var utf8 = Array(path.utf8)[...]
        while let b = utf8.popFirst() {
            if b == UInt8(ascii: "%") {
                guard utf8.count >= 2, utf8.prefix(2).allSatisfy(isHexDigit),
                      let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) else { return nil }
                utf8 = utf8.dropFirst(2)
                bytes.append(value)
            } else {
                bytes.append(b)
            }
        }
        guard !bytes.contains(0), let decoded = String(validating: bytes, as: UTF8.self) else { return nil }
        let segments = decoded.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard !segments.contains(where: { $0 == "." || $0 == ".." }) else { return nil }
        return (segments, decoded.hasSuffix("/"))
    }

    /// What `segments` lead to under the root, symlinks followed, as long as they stay in it.
    func find(_ segments: [String]) -> Found {
        let joined = segments.isEmpty ? root : root + "/" + segments.joined(separator: "/")
        guard let pointer = realpath(joined, nil) else { return .none }
        let resolved = String(cString: pointer)
        free(pointer)
        guard resolved == root || resolved.hasPrefix(root == "/" ? "/" : root + "/") else { return .none }
        var info = stat()
        guard stat(resolved, &info) == 0 else { return .none }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file(resolved)
        case S_IFDIR: return .directory(resolved)
        default: return .none
        }
    }

    /// Answers 200 with the file at `resolved` (a path `find` returned) and its length; `sent`
    /// counts the body bytes written so far (none for HEAD). False when it cannot be opened as
    /// a regular file, before anything is written.
    static func send(_ resolved: String, _ responder: Responder, sent: inout UInt64) throws -> Bool {
        let fd = open(resolved, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        try responder.start(status: 200, contentType: contentType(resolved), length: UInt64(info.st_size))
        guard !responder.isHead else { return true }
        var left = Int(info.st_size)
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while left > 0 {
            let n = try retrying("read") { chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, left)) } }
            // A file that shrank mid-answer: the promised length cannot be kept; close.
            guard n > 0 else {
                responder.closeAfterResponse()
                return true
            }
            try responder.write(Array(chunk[0..<n]))
            sent += UInt64(n)
            left -= n
        }
        return true
    }

    /// By the name's ending; a package index's wheels and sdists are octet streams, a wheel's
    /// PEP 658 metadata text.
    static func contentType(_ path: String) -> String {
        let types = [
            ".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8", ".json": "application/json",
            ".metadata": "text/plain; charset=utf-8",
        ]
        return types.first { path.hasSuffix($0.key) }?.value ?? "application/octet-stream"
    }
}
