/// Why an image could not be built, found or removed, as one line, and what kind of failure it
/// was: the kind is what a caller turns into an exit status (the CLI) or a response code (an API).
public struct ImageError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        /// The request was wrong (a bad name, option, package or suite): nothing was kept.
        case badInput
        /// Anything else: a missing program, the network, a damaged store, a failed step.
        case failed
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public static func badInput(_ message: String) -> ImageError { ImageError(.badInput, message) }
    public static func failed(_ message: String) -> ImageError { ImageError(.failed, message) }

    public var description: String { message }
}
