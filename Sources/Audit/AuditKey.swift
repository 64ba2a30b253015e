import Crypto
import Foundation
import Glibc
import Merkle
import POSIX
import SignedLog

/// The Ed25519 key that signs a log's tree heads. The private key file holds the 32-byte seed,
/// raw, mode 0600; it is made on first use (O_CREAT|O_EXCL, so two writers never make two keys)
/// and refused when group or others may read it. The public key is written beside it as
/// `<key>.pub`: 64 lowercase hex digits and a newline, the file to hand to verifiers.
/// (Sendable by hand: swift-crypto 3's key types are immutable after creation but not marked.)
public struct AuditKey: @unchecked Sendable {
    public let path: String
    let privateKey: Curve25519.Signing.PrivateKey
    public var publicKey: AuditPublicKey { AuditPublicKey(privateKey.publicKey) }

    /// Where the public key of the key at `keyPath` is kept.
    public static func publicKeyPath(forKey keyPath: String) -> String { keyPath + ".pub" }

    /// Loads the key at `path`, or makes one there if there is no file; either way makes sure
    /// `<path>.pub` holds its public key.
    public static func loadOrCreate(path: String) throws(AuditError) -> AuditKey {
        let key: AuditKey
        switch try create(path: path) {
        case .some(let created): key = created
        case .none: key = try load(path: path)
        }
        try key.writePublicKey()
        return key
    }

    /// Loads an existing private key file, checking its mode first.
    public static func load(path: String) throws(AuditError) -> AuditKey {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw .keyFile(path: path, problem: "cannot open: \(describeErrno())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .keyFile(path: path, problem: "cannot stat: \(describeErrno())") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .keyFile(path: path, problem: "not a regular file") }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else { throw .keyTooOpen(path: path, mode: mode) }
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(fd, limit: 64) } catch { throw .keyFile(path: path, problem: "cannot read: \(error)") }
        guard bytes.count == 32 else {
            throw .keyFile(path: path, problem: "holds \(bytes.count) bytes, not a 32-byte Ed25519 seed")
        }
        do {
            return AuditKey(path: path, privateKey: try Curve25519.Signing.PrivateKey(rawRepresentation: bytes))
        } catch {
            throw .keyFile(path: path, problem: "not an Ed25519 key: \(error)")
        }
    }

    /// Makes a new key file, or returns nil if one is already there.
    static func create(path: String) throws(AuditError) -> AuditKey? {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 {
            if errno == EEXIST { return nil }
            throw .keyFile(path: path, problem: "cannot create: \(describeErrno())")
        }
        defer { close(fd) }
        let key = Curve25519.Signing.PrivateKey()
        do {
            // The umask may only have taken bits away; make sure of 0600 anyway.
            guard fchmod(fd, 0o600) == 0 else { throw SystemError("fchmod") }
            try FileIO.writeAll(fd, Array(key.rawRepresentation))
            guard fsync(fd) == 0 else { throw SystemError("fsync") }
        } catch {
            unlink(path)
            throw .keyFile(path: path, problem: "cannot write: \(error)")
        }
        FileIO.syncDirectory(of: path)
        return AuditKey(path: path, privateKey: key)
    }

    /// Writes `<path>.pub` if it is missing; refuses one that holds another key.
    func writePublicKey() throws(AuditError) {
        let pubPath = Self.publicKeyPath(forKey: path)
        if access(pubPath, F_OK) == 0 {
            let existing = try AuditPublicKey.load(path: pubPath)
            guard existing == publicKey else {
                throw .publicKeyFile(path: pubPath, problem: "holds another key than \(path)")
            }
            return
        }
        // Written under a temporary name and renamed, so a reader never sees half a key.
        let temporary = pubPath + ".tmp.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw .publicKeyFile(path: pubPath, problem: "cannot create: \(describeErrno())") }
        do {
            try FileIO.writeAll(fd, Array((publicKey.hex + "\n").utf8))
            guard fsync(fd) == 0 else { throw SystemError("fsync") }
            close(fd)
            guard rename(temporary, pubPath) == 0 else { throw SystemError("rename") }
        } catch {
            close(fd)
            unlink(temporary)
            throw .publicKeyFile(path: pubPath, problem: "cannot write: \(error)")
        }
        FileIO.syncDirectory(of: pubPath)
    }

    /// Ed25519 over `message`; package-wide so buckets sign their heads with the same key type.
    package func sign(_ message: [UInt8]) throws(AuditError) -> [UInt8] {
        do { return Array(try privateKey.signature(for: message)) } catch {
            throw .keyFile(path: path, problem: "cannot sign: \(error)")
        }
    }
}

/// An Ed25519 public key that checks tree head signatures.
public struct AuditPublicKey: Equatable, @unchecked Sendable, HeadKey {
    let key: Curve25519.Signing.PublicKey

    init(_ key: Curve25519.Signing.PublicKey) { self.key = key }

    /// A key from its 32 raw bytes.
    public init?(rawRepresentation bytes: [UInt8]) {
        guard bytes.count == 32, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: bytes) else { return nil }
        self.key = key
    }

    public var rawRepresentation: [UInt8] { Array(key.rawRepresentation) }
    public var hex: String { Hex.encode(rawRepresentation) }
    /// The key's fingerprint: SHA-256 of its 32 raw bytes, 64 lowercase hex digits (what
    /// `momin audit head` prints and `verify --key-fingerprint` pins).
    public var fingerprint: String { Hex.encode(SHA256.hash(data: rawRepresentation)) }
    /// `ed25519:` and the fingerprint's first 16 hex digits, to name the key in messages.
    public var description: String { "ed25519:\(fingerprint.prefix(16))" }

    public static func == (a: AuditPublicKey, b: AuditPublicKey) -> Bool { a.rawRepresentation == b.rawRepresentation }

    /// Reads a public key file: 64 hex digits (surrounding white space allowed) or 32 raw bytes.
    public static func load(path: String) throws(AuditError) -> AuditPublicKey {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .publicKeyFile(path: path, problem: "cannot open: \(describeErrno())") }
        defer { close(fd) }
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(fd, limit: 256) } catch {
            throw .publicKeyFile(path: path, problem: "cannot read: \(error)")
        }
        if bytes.count == 32, let key = AuditPublicKey(rawRepresentation: bytes) { return key }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.utf8.count == 64, let raw = Hex.decode(text), let key = AuditPublicKey(rawRepresentation: raw) else {
            throw .publicKeyFile(path: path, problem: "not an Ed25519 public key (64 hex digits or 32 raw bytes)")
        }
        return key
    }

    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        signature.count == 64 && key.isValidSignature(signature, for: message)
    }
}
