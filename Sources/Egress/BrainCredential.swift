import Glibc
import POSIX

/// The model provider's API key, held by the host (docs/brain.md, "The key"): the relay adds it
/// to each call it forwards, and nothing of it reaches a VM, the audit log or an error message.
/// It comes from `MOMIN_BRAIN_KEY_FILE` (a file only its owner may read) or
/// `MOMIN_BRAIN_API_KEY`; without either, calls go out with no `Authorization` field (a local
/// model server).
public struct BrainCredential: Sendable, Equatable, CustomStringConvertible {
    let token: [UInt8]

    public static let fileVariable = "MOMIN_BRAIN_KEY_FILE"
    public static let valueVariable = "MOMIN_BRAIN_API_KEY"
    public static let maximumLength = 4096

    /// Never the key itself.
    public var description: String { "an API key of \(token.count) bytes" }

    /// The field the relay sends: `Authorization: Bearer KEY` (RFC 6750 §2.1).
    var authorizationField: [UInt8] { Array("Authorization: Bearer ".utf8) + token + [0x0D, 0x0A] }

    /// A key as written in a variable or a file: one trailing line end dropped; what is left
    /// must be 1 to 4096 visible ASCII characters (no space or control character can end a
    /// header field early, RFC 9110 §5.5).
    public static func parse(_ bytes: some Collection<UInt8>, source: String) -> Result<BrainCredential, CredentialError> {
        guard bytes.count <= maximumLength + 2 else { return .failure(CredentialError("\(source) is longer than \(maximumLength) bytes")) }
        var token = Array(bytes)
        if token.last == 0x0A { token.removeLast() }
        if token.last == 0x0D { token.removeLast() }
        guard !token.isEmpty else { return .failure(CredentialError("\(source) is empty")) }
        guard token.count <= maximumLength else { return .failure(CredentialError("\(source) is longer than \(maximumLength) bytes")) }
        guard token.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(CredentialError("\(source) holds spaces, control or non-ASCII characters (one key on one line is expected)"))
        }
        return .success(BrainCredential(token: token))
    }

    /// Reads a key file: a regular file that neither its group nor others may read (as ssh
    /// asks of a private key), at most 4 KiB.
    public static func load(file path: String) -> Result<BrainCredential, CredentialError> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return .failure(CredentialError("key file \(path): \(describeErrno())")) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .failure(CredentialError("key file \(path): \(describeErrno())")) }
        guard info.st_mode & S_IFMT == S_IFREG else { return .failure(CredentialError("key file \(path) is not a regular file")) }
        guard info.st_mode & 0o077 == 0 else {
            return .failure(CredentialError("key file \(path) may be read or written by others (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it"))
        }
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(fd, limit: maximumLength + 2) } catch {
            return .failure(CredentialError("key file \(path): \(error)"))
        }
        return parse(bytes, source: "key file \(path)")
    }

    /// The key the environment names, or nil when it names none. The file variable wins when
    /// both are set; a bad key is an error, never a silent fallback to none.
    public static func fromEnvironment(file: String?, value: String?) -> Result<BrainCredential?, CredentialError> {
        if let file, !file.isEmpty { return load(file: file).map { $0 } }
        if let value, !value.isEmpty { return parse(Array(value.utf8), source: valueVariable).map { $0 } }
        return .success(nil)
    }
}

public struct CredentialError: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
