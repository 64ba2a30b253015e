/// The little of the i8042 keyboard controller a microVM needs: Linux's `reboot=k` path pulses
/// the CPU reset line by writing command 0xFE to port 0x64. Everything else reads as an idle,
/// empty controller. Window: ports 0x60–0x64 (data at offset 0, status/command at offset 4).
public final class I8042: BusDevice, @unchecked Sendable {
    public static let base: UInt64 = 0x60
    public static let length: UInt64 = 5
    static let commandOffset: UInt64 = 4
    static let pulseResetLine: UInt8 = 0xfe

    private let onReset: @Sendable () -> Void

    public init(onReset: @escaping @Sendable () -> Void) { self.onReset = onReset }

    public func read(offset: UInt64, into data: inout [UInt8]) {
        // Status 0: output buffer empty, input buffer empty (so writers never wait).
        for i in data.indices { data[i] = 0 }
    }

    public func write(offset: UInt64, data: [UInt8]) {
        if offset == Self.commandOffset, data.first == Self.pulseResetLine { onReset() }
    }
}
