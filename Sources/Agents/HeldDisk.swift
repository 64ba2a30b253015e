/// A disk an agent's VM holds, as the tree knows it: what a `hands spawn --disk NAME` may pass
/// on to a sub-agent (docs/disks.md, "Sub-agents"). Unnamed disks cannot be named, so they are
/// not listed.
public struct HeldDisk: Sendable, Equatable {
    /// Its name in the VM (its virtio-blk serial).
    public var name: String
    /// The host file, every symlink resolved.
    public var path: String
    public var writable: Bool
    /// The VM's root image (`--image`): a sub-agent given it boots on it.
    public var isRoot: Bool

    public init(name: String, path: String, writable: Bool, isRoot: Bool = false) {
        self.name = name
        self.path = path
        self.writable = writable
        self.isRoot = isRoot
    }
}
