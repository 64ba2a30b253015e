/// Feature bits every virtio device shares (virtio 1.2 §6, "Reserved Feature Bits").
public enum VirtioFeature {
    /// VIRTIO_F_INDIRECT_DESC: descriptors may point at indirect tables (§2.7.5.3).
    public static let indirectDescriptors: UInt64 = 1 << 28
    /// VIRTIO_F_EVENT_IDX: `used_event` / `avail_event` notification suppression (§2.7.7, §2.7.10).
    public static let eventIndex: UInt64 = 1 << 29
    /// VIRTIO_F_VERSION_1: the modern interface. Always offered, and required of the driver.
    public static let version1: UInt64 = 1 << 32
}

/// Device status bits (§2.1).
public enum VirtioStatus {
    public static let acknowledge: UInt32 = 0x01
    public static let driver: UInt32 = 0x02
    public static let driverOK: UInt32 = 0x04
    public static let featuresOK: UInt32 = 0x08
    public static let deviceNeedsReset: UInt32 = 0x40
    public static let failed: UInt32 = 0x80
}

/// Device IDs (§5) for the devices this VMM has or plans.
public enum VirtioDeviceType {
    public static let network: UInt32 = 1
    public static let block: UInt32 = 2
    public static let console: UInt32 = 3
    public static let entropy: UInt32 = 4
    public static let vsock: UInt32 = 19
}
