import LinuxBoot

/// What each MMIO device takes from the machine: a register window in the MMIO hole and an
/// I/O APIC pin for its interrupt. Handed out in order, so the same devices always land at the
/// same addresses (the DSDT describes them; virtio 1.2 §4.2.1 leaves placement to the platform).
struct DeviceSlots: Sendable {
    /// Windows start 4 KiB apart (each its own page, so an ioeventfd or a future mapping never
    /// spans two devices), from `Layout.deviceMMIOStart`.
    static let windowAlignment: UInt64 = 0x1000
    /// The I/O APIC's 24 pins: 0–4 are the ISA legacy ones (COM1 is 4); devices take 5–23.
    static let firstGSI: UInt32 = 5
    static let lastGSI: UInt32 = 23
    /// MMIO windows stay below the I/O APIC's registers.
    static let windowsEnd: UInt64 = Layout.ioAPIC

    struct Slot: Equatable, Sendable {
        let base: UInt64
        let gsi: UInt32
    }

    private var nextBase = Layout.deviceMMIOStart
    private var nextGSI = firstGSI

    /// The next window of `size` bytes (rounded up to whole pages) and the next free pin.
    mutating func allocate(size: UInt64) throws(VMMError) -> Slot {
        let pages = (size + Self.windowAlignment - 1) / Self.windowAlignment
        let span = max(pages, 1) * Self.windowAlignment
        guard nextGSI <= Self.lastGSI else {
            throw .device("no interrupt pin left for another device (GSIs \(Self.firstGSI)–\(Self.lastGSI) are taken)")
        }
        guard span <= Self.windowsEnd - nextBase else {
            throw .device("no MMIO space left for a \(size)-byte device window below 0x\(String(Self.windowsEnd, radix: 16))")
        }
        let slot = Slot(base: nextBase, gsi: nextGSI)
        nextBase += span
        nextGSI += 1
        return slot
    }
}
