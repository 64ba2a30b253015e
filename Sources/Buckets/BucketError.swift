import Audit
import Merkle
import SignedLog

/// Why a bucket store could not be opened, written or read, or why a request was refused.
/// Each case reads as a message. (What is wrong inside a readable store is a `BucketFinding`.)
public enum BucketError: Error, Equatable, CustomStringConvertible {
    /// A namespace, key, value or tag outside the limits (`BucketLimits`).
    case invalid(String)
    /// The signing key or its public key file.
    case key(String)
    /// The file is not a MominAI bucket store (or not one this version reads).
    case notABucketStore(path: String, why: String)
    case cannotOpen(path: String, why: String)
    /// Another writer (in this or another process) has the store open.
    case busy(path: String)
    case database(path: String, message: String)
    /// The store's signed heads were made with another key than the writer's.
    case keyMismatch(path: String, keyPath: String)
    /// The store is damaged where a read or a resume looked; verify names the first problem.
    case damaged(path: String, finding: BucketFinding)
    case readOnly(path: String)
    case closed(path: String)
    /// No entry under this key (or at this index) in the namespace.
    case notFound(namespace: String, key: String)
    /// An inclusion proof was asked for an entry that no signed head covers yet.
    case unsigned(namespace: String, index: UInt64)
    /// An inclusion proof that does not check out.
    case proof(String)

    public var description: String {
        switch self {
        case .invalid(let why): why
        case .key(let why): why
        case .notABucketStore(let path, let why): "\(path) is not a MominAI bucket store: \(why)"
        case .cannotOpen(let path, let why): "cannot open bucket store \(path): \(why)"
        case .busy(let path): "bucket store \(path) is already open for writing (by this or another process)"
        case .database(let path, let message): "bucket store \(path): \(message)"
        case .keyMismatch(let path, let keyPath): "bucket store \(path) was signed with another key than \(keyPath)"
        case .damaged(let path, let finding): "bucket store \(path) is damaged: \(finding)"
        case .readOnly(let path): "bucket store \(path) is open read-only"
        case .closed(let path): "bucket store \(path) is closed"
        case .notFound(let namespace, let key): "namespace \(namespace) has no entry \(key)"
        case .unsigned(let namespace, let index):
            "namespace \(namespace) entry \(index) is not covered by a signed head yet (close the writer to sign it)"
        case .proof(let why): "inclusion proof rejected: \(why)"
        }
    }
}

extension BucketError {
    init(_ error: LogStoreError, path: String) {
        switch error {
        case .notThisFormat(let why): self = .notABucketStore(path: path, why: why)
        case .cannotOpen(let why): self = .cannotOpen(path: path, why: why)
        case .busy: self = .busy(path: path)
        case .database(let message): self = .database(path: path, message: message)
        }
    }
}

/// Runs SQLite work, turning its errors into `BucketError`s naming the store.
func catchingSQL<T>(_ path: String, _ body: () throws -> T) throws(BucketError) -> T {
    do { return try body() } catch let error as BucketError { throw error } catch { throw BucketError(LogStoreError(error), path: path) }
}

/// The first thing wrong in a store: where, what kind of tampering it looks like, and the detail.
public struct BucketFinding: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Place: Hashable, Sendable {
        case entry(namespace: String, index: UInt64)
        /// A signed head of a namespace, by sequence number, with the tree size it claims when known.
        case head(namespace: String, sequence: UInt64, treeSize: UInt64?)
        /// A stored value that no entry refers to.
        case blob(MerkleHash)
    }

    /// The same kinds of tampering the audit verifier names, `valueModified` being the one
    /// only a bucket store has (a value whose bytes no longer hash to its content address).
    public typealias Kind = LogFinding.Kind

    public var place: Place
    public var kind: Kind
    public var detail: String

    public init(place: Place, kind: Kind, detail: String) {
        self.place = place
        self.kind = kind
        self.detail = detail
    }

    /// A finding in the tree of `namespace`.
    init(_ finding: LogFinding, namespace: String) {
        switch finding.place {
        case .entry(let index): place = .entry(namespace: namespace, index: index)
        case .head(let sequence, let treeSize): place = .head(namespace: namespace, sequence: sequence, treeSize: treeSize)
        // A bucket store has no log identity: its heads are scoped by namespace instead.
        case .identity: place = .head(namespace: namespace, sequence: 0, treeSize: nil)
        }
        kind = finding.kind
        detail = finding.detail
    }

    public var description: String {
        switch place {
        case .entry(let namespace, let index): "namespace \(namespace) entry \(index): \(kind.rawValue): \(detail)"
        case .head(let namespace, let sequence, let size?):
            "namespace \(namespace) head \(sequence) (tree size \(size)): \(kind.rawValue): \(detail)"
        case .head(let namespace, let sequence, nil): "namespace \(namespace) head \(sequence): \(kind.rawValue): \(detail)"
        case .blob(let hash): "value \(hash.hex): \(kind.rawValue): \(detail)"
        }
    }
}
