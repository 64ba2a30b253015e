import Foundation
import GRDB
import Merkle
import SignedLog

/// A log's identity: 16 random bytes made when the log is created, kept in its one-row `log`
/// table and signed into every head, so a head of one log is no head of another, even under
/// the same key, and two logs cannot be swapped (docs/audit.md, "Log identity").
public struct LogID: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 16

    public let bytes: [UInt8]

    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = Array(bytes)
    }

    /// 32 hex digits, either case.
    public init?(hex: some StringProtocol) {
        guard hex.utf8.count == 2 * Self.byteCount, let bytes = Hex.decode(hex.lowercased()) else { return nil }
        self.init(bytes: bytes)
    }

    /// A fresh identity from the system's CSPRNG (getrandom(2)).
    static func random() -> LogID {
        var generator = SystemRandomNumberGenerator()
        return LogID(bytes: (0..<byteCount).map { _ in UInt8.random(in: .min ... .max, using: &generator) })!
    }

    /// 32 lowercase hex digits.
    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }

    /// The identity stored in an open log, or the finding that it is missing or malformed.
    static func read(_ db: Database) throws -> Result<LogID, AuditFinding> {
        func damaged(_ detail: String) -> Result<LogID, AuditFinding> {
            .failure(AuditFinding(place: .identity, kind: .modified, detail: detail))
        }
        let rows = try Row.fetchAll(db, sql: "SELECT id FROM log LIMIT 2")
        guard rows.count == 1 else {
            return damaged("the log table holds \(rows.isEmpty ? "no row" : "more than one row"), not one identity: no head can be checked")
        }
        guard case .blob(let data) = (rows[0][0] as DatabaseValue).storage, let id = LogID(bytes: data) else {
            return damaged("it is not \(byteCount) bytes: no head can be checked")
        }
        return .success(id)
    }
}
