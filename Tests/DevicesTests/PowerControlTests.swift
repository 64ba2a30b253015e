import Testing
import Devices

@Suite struct PowerControlTests {
    /// ACPI 6.x §4.8.3.7: SLP_TYP in bits 2-4, SLP_EN in bit 5. Linux writes 5 << 2 | 0x20.
    @Test(arguments: 0..<8)
    func sleepControlPowersOffOnlyForS5WithSleepEnable(sleepType: UInt8) {
        let requests = Recorder<PowerControl.Request>()
        let power = PowerControl(onRequest: requests.record)
        writeByte(power, 0, sleepType << 2)  // SLP_EN clear
        #expect(requests.values.isEmpty)
        writeByte(power, 0, sleepType << 2 | 0x20)
        #expect(requests.values == (sleepType == 5 ? [.powerOff] : []))
    }

    @Test func resetPortResetsOnlyOnTheResetValue() {
        let requests = Recorder<PowerControl.Request>()
        let power = PowerControl(onRequest: requests.record)
        writeByte(power, 4, 0x02)
        writeByte(power, 4, 0x34)
        #expect(requests.values.isEmpty)
        writeByte(power, 4, 0x01)
        #expect(requests.values == [.reset])
        writeByte(power, 0, 0x01)  // the reset value on the sleep port is not a reset
        writeByte(power, 1, 0x34)  // nor is S5 on the status port a power-off
        writeByte(power, 1, 0x80)  // Linux clears WAK_STS before sleeping
        #expect(requests.values == [.reset])
        #expect(readByte(power, 1) == 0)
    }

    @Test func windowCoversTheThreePorts() {
        let power = PowerControl(onRequest: { _ in })
        #expect(power.base == 0x600)
        #expect(power.length == 5)
        let shuffled = PowerControl(sleepControlPort: 0x402, sleepStatusPort: 0x403, resetPort: 0x400,
                                    resetValue: 0x0e, onRequest: { _ in })
        #expect(shuffled.base == 0x400)
        #expect(shuffled.length == 4)
    }

    @Test func answersThroughABusByAbsolutePort() throws {
        let requests = Recorder<PowerControl.Request>()
        let power = PowerControl(sleepControlPort: 0x402, sleepStatusPort: 0x403, resetPort: 0x400,
                                 resetValue: 0x0e, onRequest: requests.record)
        var bus = Bus()
        try bus.insert(power, base: power.base, length: power.length)
        #expect(bus.write(0x402, data: [0x34]))
        #expect(bus.write(0x400, data: [0x0e]))
        #expect(bus.write(0x401, data: [0x34]))
        #expect(!bus.write(0x404, data: [0x0e]))
        #expect(requests.values == [.powerOff, .reset])
        #expect(bus.read(0x403, size: 1) == [0])
    }
}
