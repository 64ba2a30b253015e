/// What makes an image and keeps it: the store, the caller's environment (PATH, where the
/// programs are found, and proxy settings), and how a long step reports and is interrupted.
/// `build` (DebianImageBuilder.swift) and `importImage` (ImageImporter.swift) are its two ways in.
public struct ImageMaker: Sendable {
    public var store: ImageStore
    public var environment: [String: String]
    /// One line per step, and each line mmdebstrap writes; nil: quiet.
    public var progress: (@Sendable (String) -> Void)?
    /// Asked now and then while a program runs: a signal to pass on to it (the caller's Ctrl-C).
    public var pendingSignal: (@Sendable () -> Int32?)?
    /// What went wrong on the side while the work went on (a build directory left behind).
    public var warn: @Sendable (String) -> Void

    public init(store: ImageStore, environment: [String: String], progress: (@Sendable (String) -> Void)? = nil,
                pendingSignal: (@Sendable () -> Int32?)? = nil, warn: @escaping @Sendable (String) -> Void = { _ in }) {
        self.store = store
        self.environment = environment
        self.progress = progress
        self.pendingSignal = pendingSignal
        self.warn = warn
    }

    /// What a build or an import did: made a new image, or found one from the same inputs.
    public enum Outcome: Sendable {
        case made(ImageManifest, path: String)
        case reused(ImageManifest, path: String)
    }
}
