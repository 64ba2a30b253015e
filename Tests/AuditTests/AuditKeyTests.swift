import Audit
import Foundation
import Glibc
import Testing

@Suite struct AuditKeyTests {
    func mode(_ path: String) -> UInt32 {
        var info = stat()
        guard stat(path, &info) == 0 else { return 0xFFFF }
        return UInt32(info.st_mode & 0o777)
    }

    @Test func aKeyIsMadeOnFirstUseWithMode0600AndItsPublicHalfBesideIt() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("signing.key")
        let previous = umask(0)  // even with a permissive umask
        defer { umask(previous) }
        let key = try AuditKey.loadOrCreate(path: path)
        #expect(mode(path) == 0o600)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count == 32)
        let pub = try String(contentsOfFile: AuditKey.publicKeyPath(forKey: path), encoding: .utf8)
        #expect(pub == key.publicKey.hex + "\n")
        #expect(try AuditPublicKey.load(path: path + ".pub") == key.publicKey)
        // The second use loads the same key.
        #expect(try AuditKey.loadOrCreate(path: path).publicKey == key.publicKey)
    }

    @Test(arguments: [0o640, 0o604, 0o644, 0o660, 0o700 | 0o020]) func aKeyOthersCanReadIsRefused(loose: Int) throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("k")
        _ = try AuditKey.loadOrCreate(path: path)
        chmod(path, mode_t(loose))
        #expect(throws: AuditError.keyTooOpen(path: path, mode: UInt32(loose))) { try AuditKey.load(path: path) }
        #expect(throws: AuditError.keyTooOpen(path: path, mode: UInt32(loose))) {
            try AuditLog(path: dir.file("log.db"), options: AuditLog.Options(keyPath: path))
        }
        let message = AuditError.keyTooOpen(path: path, mode: UInt32(loose)).description
        #expect(message.contains(path) && message.contains(String(loose, radix: 8)) && message.contains("chmod 600"))
    }

    @Test func aKeyFileOfTheWrongSizeIsRefusedByName() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("short.key")
        #expect(FileManager.default.createFile(atPath: path, contents: Data(repeating: 1, count: 31), attributes: [.posixPermissions: 0o600]))
        #expect { try AuditKey.load(path: path) } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("31 bytes")
        }
    }

    @Test func aPublicKeyFileForAnotherKeyIsRefused() throws {
        let dir = try TemporaryDirectory()
        let other = try AuditKey.loadOrCreate(path: dir.file("other.key"))
        try (other.publicKey.hex + "\n").write(toFile: dir.file("mine.key.pub"), atomically: true, encoding: .utf8)
        #expect { try AuditKey.loadOrCreate(path: dir.file("mine.key")) } throws: { error in
            "\(error)".contains("mine.key.pub") && "\(error)".contains("another key")
        }
    }

    @Test func publicKeysLoadFromHexOrRawBytesAndNothingElse() throws {
        let dir = try TemporaryDirectory()
        let key = try AuditKey.loadOrCreate(path: dir.file("k"))
        #expect(FileManager.default.createFile(atPath: dir.file("raw"), contents: Data(key.publicKey.rawRepresentation)))
        #expect(try AuditPublicKey.load(path: dir.file("raw")) == key.publicKey)
        try ("  " + key.publicKey.hex.uppercased() + "\r\n").write(toFile: dir.file("hex"), atomically: true, encoding: .utf8)
        #expect(try AuditPublicKey.load(path: dir.file("hex")) == key.publicKey)
        try String(key.publicKey.hex.dropLast()).write(toFile: dir.file("cut"), atomically: true, encoding: .utf8)
        #expect(throws: AuditError.self) { try AuditPublicKey.load(path: dir.file("cut")) }
        #expect(throws: AuditError.self) { try AuditPublicKey.load(path: dir.file("missing")) }
    }
}
