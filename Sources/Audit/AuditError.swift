import SignedLog

/// Why a log could not be opened, written or read. Each case reads as a message that names the file.
/// (What is wrong inside a log that can be read is an `AuditFinding`.)
public enum AuditError: Error, Equatable, CustomStringConvertible {
    case keyFile(path: String, problem: String)
    /// A private key that group or others may read is not used.
    case keyTooOpen(path: String, mode: UInt32)
    case publicKeyFile(path: String, problem: String)
    /// A head file (`momin audit head`'s output, a witness file) that cannot be read or is not a head.
    case headFile(path: String, problem: String)
    /// The file is not a MominAI audit log (or not one this version reads).
    case notAnAuditLog(path: String, why: String)
    case cannotOpen(path: String, why: String)
    /// Another AuditLog (in this or another process) is writing the log.
    case busy(path: String)
    /// SQLite failed.
    case database(path: String, message: String)
    /// The log's signed heads were made with another key than the writer's.
    case keyMismatch(path: String, keyPath: String)
    /// A writer found the log damaged and will not extend it.
    case damaged(path: String, finding: AuditFinding)
    /// The event cannot be encoded (a field over the size limit).
    case eventTooLarge(String)
    case closed(path: String)
    /// A head could not be signed (or witnessed) when it was due, with no caller to tell then:
    /// the log takes no more appends.
    case signing(path: String, problem: String)
    /// The log's witness file cannot be opened or written.
    case witness(path: String, witness: String, problem: String)
    /// A proof or record asked for outside the log.
    case invalidRequest(String)

    public var description: String {
        switch self {
        case .keyFile(let path, let problem): "audit key \(path): \(problem)"
        case .keyTooOpen(let path, let mode):
            "audit key \(path) has mode \(String(mode, radix: 8, uppercase: false).leftPadded(to: 4)): it must not be readable or writable by group or others (chmod 600 \(path))"
        case .publicKeyFile(let path, let problem): "audit public key \(path): \(problem)"
        case .headFile(let path, let problem): "head file \(path): \(problem)"
        case .notAnAuditLog(let path, let why): "\(path) is not a MominAI audit log: \(why)"
        case .cannotOpen(let path, let why): "cannot open audit log \(path): \(why)"
        case .busy(let path): "audit log \(path) is already open for writing (by this or another process)"
        case .database(let path, let message): "audit log \(path): \(message)"
        case .keyMismatch(let path, let keyPath): "audit log \(path) was signed with another key than \(keyPath)"
        case .damaged(let path, let finding): "audit log \(path) is damaged and will not be extended: \(finding)"
        case .eventTooLarge(let why): "audit event too large: \(why)"
        case .closed(let path): "audit log \(path) is closed"
        case .signing(let path, let problem): "audit log \(path) takes no more entries: \(problem)"
        case .witness(let path, let witness, let problem): "audit log \(path): witness \(witness): \(problem)"
        case .invalidRequest(let why): why
        }
    }
}

extension AuditError {
    init(_ error: LogStoreError, path: String) {
        switch error {
        case .notThisFormat(let why): self = .notAnAuditLog(path: path, why: why)
        case .cannotOpen(let why): self = .cannotOpen(path: path, why: why)
        case .busy: self = .busy(path: path)
        case .database(let message): self = .database(path: path, message: message)
        }
    }
}

/// Runs SQLite work, turning its errors into `AuditError`s naming the log.
func catchingSQL<T>(_ path: String, _ body: () throws -> T) throws(AuditError) -> T {
    do { return try body() } catch let error as AuditError { throw error } catch { throw AuditError(LogStoreError(error), path: path) }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
