import Policy

/// Hands calls name no guest paths: a policy never needs to resolve one for them.
public struct NoGuestPaths: PathResolver {
    public init() {}
    public func canonicalPath(_ path: String, followFinalSymlink: Bool) -> String? { nil }
}
