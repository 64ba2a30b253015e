/// What both ends agreed on in the handshake.
///
/// Each side sends a Hello first and reads the peer's; both then run `negotiate` on the same two
/// Hellos and reach the same answer: the highest version both list, and the smaller of the two
/// payload limits (never above `DoorsProtocol.maxPayload`).
public struct Session: Hashable, Sendable {
    public var version: UInt8
    public var maxPayload: Int

    public init(version: UInt8, maxPayload: Int) {
        self.version = version
        self.maxPayload = maxPayload
    }

    /// Throws `noCommonVersion` when the Hellos share no version; send its `reply` and close.
    public static func negotiate(local: Hello, remote: Hello) throws(DoorsError) -> Session {
        let common = local.versions.filter { remote.versions.contains($0) && $0 != 0 }
        guard let version = common.max() else {
            throw .noCommonVersion(local: local.versions, remote: remote.versions)
        }
        let maxPayload = min(Int(local.maxPayload), Int(remote.maxPayload), DoorsProtocol.maxPayload)
        return Session(version: version, maxPayload: maxPayload)
    }
}
