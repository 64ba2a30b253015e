import Testing
import Devices

@Suite struct I8042Tests {
    @Test func commandFEPulsesResetOncePerWrite() {
        let resets = Recorder<Void>()
        let i8042 = I8042(onReset: { resets.record(()) })
        writeByte(i8042, 4, 0xfe)
        #expect(resets.values.count == 1)
        writeByte(i8042, 4, 0xfe)
        #expect(resets.values.count == 2)
    }

    @Test func otherCommandsAndTheDataPortDoNothing() {
        let resets = Recorder<Void>()
        let i8042 = I8042(onReset: { resets.record(()) })
        writeByte(i8042, 0, 0xfe)  // data port
        writeByte(i8042, 4, 0xfd)
        writeByte(i8042, 4, 0xad)  // disable keyboard
        i8042.write(offset: 4, data: [])
        #expect(resets.values.isEmpty)
    }

    @Test func readsAsAnIdleEmptyController() {
        let i8042 = I8042(onReset: {})
        #expect(readByte(i8042, 0) == 0)
        #expect(readByte(i8042, 4) == 0)
        var wide: [UInt8] = [0xaa, 0xbb]
        i8042.read(offset: 4, into: &wide)
        #expect(wide == [0, 0])
        #expect(I8042.base == 0x60 && I8042.length == 5)
    }
}
