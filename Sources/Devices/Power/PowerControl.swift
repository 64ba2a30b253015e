/// The hardware-reduced ACPI sleep and reset registers (ACPI 6.x §4.8.3.7–4.8.3.8 and the
/// FADT's SLEEP_CONTROL_REG, SLEEP_STATUS_REG, RESET_REG), as 8-bit I/O ports. A write to the
/// sleep control register with SLP_EN and SLP_TYP = 5 (the DSDT's \_S5 value) is a power-off;
/// a write of the reset value to the reset register is a reboot.
public final class PowerControl: BusDevice, @unchecked Sendable {
    public enum Request: Equatable, Sendable { case powerOff, reset }

    public static let sleepTypeS5: UInt8 = 5
    /// Sleep control register: SLP_TYP in bits 2–4, SLP_EN in bit 5 (ACPI 6.x §4.8.3.7).
    static let sleepEnable: UInt8 = 1 << 5

    public let sleepControlPort: UInt64
    public let sleepStatusPort: UInt64
    public let resetPort: UInt64
    public let resetValue: UInt8
    private let onRequest: @Sendable (Request) -> Void

    /// The device claims one window from `sleepControlPort` through `resetPort`.
    public init(sleepControlPort: UInt64 = 0x600, sleepStatusPort: UInt64 = 0x601, resetPort: UInt64 = 0x604,
                resetValue: UInt8 = 1, onRequest: @escaping @Sendable (Request) -> Void) {
        self.sleepControlPort = sleepControlPort
        self.sleepStatusPort = sleepStatusPort
        self.resetPort = resetPort
        self.resetValue = resetValue
        self.onRequest = onRequest
    }

    public var base: UInt64 { min(sleepControlPort, sleepStatusPort, resetPort) }
    public var length: UInt64 { max(sleepControlPort, sleepStatusPort, resetPort) - base + 1 }

    public func read(offset: UInt64, into data: inout [UInt8]) {
        // Sleep status: WAK_STS (bit 7) is never set, since the guest never wakes from S5.
        for i in data.indices { data[i] = 0 }
    }

    public func write(offset: UInt64, data: [UInt8]) {
        guard let value = data.first else { return }
        switch base + offset {
        case sleepControlPort:
            if value & Self.sleepEnable != 0 && (value >> 2) & 0x7 == Self.sleepTypeS5 { onRequest(.powerOff) }
        case resetPort:
            if value == resetValue { onRequest(.reset) }
        default:
            break
        }
    }
}
