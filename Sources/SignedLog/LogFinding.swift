/// The first thing wrong in a signed log: where, what kind of tampering it looks like, and the
/// detail. An audit log reports it as is (`AuditFinding`); a bucket store adds the namespace.
public struct LogFinding: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Place: Hashable, Sendable {
        case entry(UInt64)
        /// A signed head, by sequence number, and the tree size it claims when it is known.
        case head(sequence: UInt64, treeSize: UInt64?)
        /// The log's identity, which every head signs (an audit log's `log` table).
        case identity
    }

    public enum Kind: String, Hashable, Sendable {
        /// A row's bytes no longer match what was written.
        case modified
        /// Rows are missing.
        case deleted
        /// A row was added that the writer did not append.
        case inserted
        /// Rows are not in the order they were appended.
        case reordered
        /// Rows were rewritten consistently (data and leaf hash), caught by a signed root: the
        /// place is the first entry that head covers beyond the head before it.
        case rewritten
        /// A head whose signature does not verify, or that is malformed.
        case forgedHead = "forged head"
        /// Entries after the last signed head (only a finding with --strict).
        case unsigned
        /// A head of another log (its signed identity is not this log's).
        case otherLog = "another log"
        /// A stored value whose bytes no longer hash to the content address its entries name
        /// (bucket stores, docs/buckets.md; an audit log has no separate values).
        case valueModified = "value modified"
    }

    public var place: Place
    public var kind: Kind
    public var detail: String

    public init(place: Place, kind: Kind, detail: String) {
        self.place = place
        self.kind = kind
        self.detail = detail
    }

    /// The first bad entry index, for a finding about entries.
    public var entryIndex: UInt64? {
        if case .entry(let index) = place { index } else { nil }
    }

    public var description: String {
        switch place {
        case .entry(let index): "entry \(index): \(kind.rawValue): \(detail)"
        case .head(let sequence, let size?): "head \(sequence) (tree size \(size)): \(kind.rawValue): \(detail)"
        case .head(let sequence, nil): "head \(sequence): \(kind.rawValue): \(detail)"
        case .identity: "log identity: \(kind.rawValue): \(detail)"
        }
    }
}
