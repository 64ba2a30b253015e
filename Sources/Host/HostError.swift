/// Why the host could not do what it was asked, as one line, and what kind of failure it was:
/// the kind is what a caller turns into an exit status (the CLI) or a response code (an API).
public struct HostError: Error, Equatable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        /// The request itself was wrong (a bad name, option, file or policy): nothing was done.
        case badInput
        /// The host has no room for the VM now (the resource ledger refused); try again later.
        case noRoom
        /// The VM, its VMM or the connection to its guest failed.
        case vmFailed
        /// Anything else that failed on the host (a file, the ledger, a damaged VM directory).
        case failed
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public static func badInput(_ message: String) -> HostError { HostError(.badInput, message) }
    public static func noRoom(_ message: String) -> HostError { HostError(.noRoom, message) }
    public static func vmFailed(_ message: String) -> HostError { HostError(.vmFailed, message) }
    public static func failed(_ message: String) -> HostError { HostError(.failed, message) }

    public var description: String { message }
}
