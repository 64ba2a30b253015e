import Crypto
import FoundationEssentials
import Glibc
import Host
import Merkle
import POSIX

/// The tokens TCP clients present (`Authorization: Bearer TOKEN`, RFC 6750 §2.1), from a file
/// only the server's user can read. The file keeps each token's SHA-256, never the token: one
/// line `NAME sha256:HEX` per client, `#` comments and blank lines allowed. The name is the
/// caller's identity in the audit log and decides which sandboxes it sees (docs/api.md, "TCP").
public struct BearerTokens: Sendable {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var digest: [UInt8]
    }

    public let entries: [Entry]

    /// The most the file may be, checked before it is read.
    static let fileLimit = 1 << 20
    /// The longest token looked at; longer ones are refused unhashed.
    public static let tokenLimit = 512

    public init(entries: [Entry]) {
        self.entries = entries
    }

    /// Reads and checks `path`: a regular file (not a link) owned by this user, readable and
    /// writable by nobody else, each line a name and a digest, no name twice.
    public static func load(_ path: String) throws(HostError) -> BearerTokens {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { throw .badInput("--tokens \(path): \(describeErrno())") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .badInput("--tokens \(path): \(describeErrno())") }
        guard st.st_mode & S_IFMT == S_IFREG else { throw .badInput("--tokens \(path): not a regular file") }
        guard st.st_uid == getuid() else { throw .badInput("--tokens \(path): owned by uid \(st.st_uid), not by this server's user (uid \(getuid()))") }
        guard st.st_mode & 0o077 == 0 else {
            throw .badInput("--tokens \(path): mode \(String(st.st_mode & 0o777, radix: 8)) lets others at it; chmod 600 it")
        }
        guard st.st_size <= fileLimit else { throw .badInput("--tokens \(path): \(st.st_size) bytes; at most \(fileLimit) are read") }
        let bytes: [UInt8]
        do throws(SystemError) { bytes = try FileIO.readAll(fd, limit: fileLimit) } catch {
            throw .badInput("--tokens \(path): \(error)")
        }
        switch parse(bytes) {
        case .success(let tokens): return tokens
        case .failure(let problem): throw .badInput("--tokens \(path): \(problem.message)")
        }
    }

    /// The file's lines as entries, or the first line that is wrong and why.
    public static func parse(_ bytes: [UInt8]) -> Result<BearerTokens, HostError> {
        var entries: [Entry] = []
        for (index, raw) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            let fields = String(decoding: raw, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty || fields[0].hasPrefix("#") { continue }
            guard fields.count == 2 else { return .failure(.badInput("line \(index + 1): expected NAME sha256:HEX")) }
            let name = String(fields[0])
            guard isName(name) else {
                return .failure(.badInput("line \(index + 1): \(name) is not a token name (1 to 64 of A-Z a-z 0-9 . _ -)"))
            }
            guard fields[1].hasPrefix("sha256:"), fields[1].count == 71, let digest = Hex.decode(fields[1].dropFirst(7)) else {
                return .failure(.badInput("line \(index + 1): the token's digest must be sha256: and 64 hex digits (momin serve --add-token makes one)"))
            }
            guard !entries.contains(where: { $0.name == name }) else { return .failure(.badInput("line \(index + 1): \(name) is named twice")) }
            entries.append(Entry(name: name, digest: digest))
        }
        return .success(BearerTokens(entries: entries))
    }

    /// The name registered for `token`, if any. Every entry's digest is compared in full, in
    /// time that does not depend on where they differ.
    public func name(for token: some Collection<UInt8>) -> String? {
        guard !token.isEmpty, token.count <= Self.tokenLimit else { return nil }
        let digest = Array(SHA256.hash(data: Array(token)))
        var found: String?
        for entry in entries {
            var difference: UInt8 = 0
            for (a, b) in zip(entry.digest, digest) { difference |= a ^ b }
            if difference == 0 && entry.digest.count == digest.count { found = entry.name }
        }
        return found
    }

    /// The caller an `Authorization` header's value admits: `Bearer TOKEN` (the scheme in any
    /// case, RFC 9110 §11.1) with a registered token.
    public func admit(authorization: String?, peer: String) -> Caller? {
        guard let value = authorization else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return name(for: Array(parts[1].trimmingSpaces.utf8)).map { Caller.token($0, peer: peer) }
    }

    /// A new token: `momin_` and 32 random bytes in URL-safe base64 (RFC 4648 §5), no padding.
    public static func newToken() -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        bytes.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
        let text = Data(bytes).base64EncodedString().replacing("+", with: "-").replacing("/", with: "_").replacing("=", with: "")
        return "momin_" + text
    }

    /// The file's line for `token` under `name`.
    public static func line(name: String, token: String) -> String {
        "\(name) sha256:\(Hex.encode(Array(SHA256.hash(data: Array(token.utf8)))))"
    }

    /// Adds `name` with a new token to `path` (made 0600 if it is not there) and returns the
    /// token, which is nowhere else: the file keeps only its digest.
    public static func add(name: String, to path: String) throws(HostError) -> String {
        guard isName(name) else { throw .badInput("--add-token \(name): not a token name (1 to 64 of A-Z a-z 0-9 . _ -)") }
        var st = stat()
        if lstat(path, &st) == 0 {
            let current = try load(path)
            guard !current.entries.contains(where: { $0.name == name }) else { throw .badInput("--add-token \(name): \(path) already has it") }
        }
        let token = newToken()
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .badInput("--tokens \(path): \(describeErrno())") }
        defer { close(fd) }
        do throws(SystemError) { try FileIO.writeAll(fd, Array((line(name: name, token: token) + "\n").utf8)) } catch {
            throw .failed("--tokens \(path): \(error)")
        }
        return token
    }

    static func isName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { $0 == 0x2D || $0 == 0x2E || $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
    }
}
