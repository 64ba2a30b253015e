import Testing
import Devices

/// Register offsets from the PC16550D datasheet, written out here rather than taken from the
/// device so the tests check the map the Linux 8250 driver uses.
private enum Register {
    static let data: UInt64 = 0, ier: UInt64 = 1, iir: UInt64 = 2, fcr: UInt64 = 2
    static let lcr: UInt64 = 3, mcr: UInt64 = 4, lsr: UInt64 = 5, msr: UInt64 = 6, scr: UInt64 = 7
}

/// A UART with a recording console and a counting interrupt line.
private struct UART {
    let output = CollectedOutput()
    let irq = CountingLine()
    let device: Serial8250
    init() { device = Serial8250(output: output, interrupt: irq) }

    func read(_ register: UInt64) -> UInt8 { readByte(device, register) }
    func write(_ register: UInt64, _ value: UInt8) { writeByte(device, register, value) }
}

@Suite struct Serial8250Tests {
    @Test func transmitsByteForByteWithoutInterruptsWhenDisabled() {
        let uart = UART()
        for b in Array("hi\n".utf8) { uart.write(Register.data, b) }
        #expect(uart.output.writes.values == [[0x68], [0x69], [0x0a]])
        #expect(uart.irq.count == 0)
        #expect(uart.read(Register.lsr) == 0x60)  // THRE | TEMT: transmission is instant
    }

    @Test func thrWriteRaisesTHREOnlyWhenEnabled() {
        let uart = UART()
        uart.write(Register.data, 0x41)
        #expect(uart.irq.count == 0)
        #expect(uart.read(Register.iir) == 0x01)  // pending THRE is masked by IER
        uart.write(Register.ier, 0x02)
        #expect(uart.irq.count == 1)
        #expect(uart.read(Register.iir) == 0x02)
        uart.write(Register.data, 0x42)
        #expect(uart.irq.count == 2)
        #expect(uart.read(Register.iir) == 0x02)
        #expect(uart.read(Register.iir) == 0x01)
        #expect(uart.output.bytes == [0x41, 0x42])
    }

    @Test(arguments: [(UInt8(0x00), UInt8(0x00)), (0x01, 0xc0), (0x07, 0xc0)])
    func enablingTHREWhileIdleRaisesOneInterruptAndReadingIIRClearsIt(fcr: UInt8, fifoBits: UInt8) {
        let uart = UART()
        uart.write(Register.fcr, fcr)
        uart.write(Register.ier, 0x02)
        #expect(uart.irq.count == 1)
        #expect(uart.read(Register.iir) == 0x02 | fifoBits)
        #expect(uart.read(Register.iir) == 0x01 | fifoBits)
        uart.write(Register.ier, 0x02)  // already enabled: no new edge
        #expect(uart.irq.count == 1)
        #expect(uart.read(Register.iir) == 0x01 | fifoBits)
    }

    /// serial8250_do_startup: THRE must be re-asserted when IER.THRI is set again, or the
    /// driver flags UART_BUG_THRE and falls back to polling the transmitter with a timer;
    /// and enabling THRI with the transmitter empty must show in IIR, or it flags UART_BUG_TXEN.
    @Test func linuxStartupTHRETestsFindNoBug() {
        let uart = UART()
        uart.write(Register.ier, 0x02)
        let iir1 = uart.read(Register.iir)
        uart.write(Register.ier, 0)
        uart.write(Register.ier, 0x02)
        let iir = uart.read(Register.iir)
        uart.write(Register.ier, 0)
        #expect(iir1 & 0x0f == 0x02)
        #expect(iir & 0x0f == 0x02)
        let bugTHRE = iir1 & 0x01 == 0 && iir & 0x01 != 0
        #expect(!bugTHRE)

        uart.write(Register.ier, 0x02)
        let lsr = uart.read(Register.lsr)
        let iirTX = uart.read(Register.iir)
        uart.write(Register.ier, 0)
        let bugTXEN = lsr & 0x40 != 0 && iirTX & 0x01 != 0
        #expect(!bugTXEN)
    }

    /// autoconfig(): IER existence test, the loopback test (MCR = LOOP|OUT2|RTS must read
    /// back DCD|CTS in MSR), then FCR.ENABLE_FIFO must show both FIFO bits in IIR (16550A).
    @Test func linuxAutoconfigIdentifiesA16550A() {
        let uart = UART()
        uart.write(Register.ier, 0)
        #expect(uart.read(Register.ier) & 0x0f == 0)
        uart.write(Register.ier, 0x0f)
        #expect(uart.read(Register.ier) & 0x0f == 0x0f)
        uart.write(Register.ier, 0)
        uart.write(Register.mcr, 0x1a)
        #expect(uart.read(Register.msr) & 0xf0 == 0x90)
        uart.write(Register.mcr, 0x08)
        uart.write(Register.fcr, 0x01)
        #expect(uart.read(Register.iir) >> 6 == 3)
    }

    @Test func receivedDataReadsBackInOrder() {
        let uart = UART()
        #expect(uart.read(Register.lsr) & 0x01 == 0)
        uart.device.enqueueInput([1, 2, 3])
        #expect(uart.irq.count == 0)  // IER.RDI is clear
        #expect(uart.read(Register.lsr) == 0x61)
        #expect(uart.read(Register.iir) == 0x01)
        #expect([uart.read(Register.data), uart.read(Register.data)] == [1, 2])
        uart.device.enqueueInput([4])
        #expect([uart.read(Register.data), uart.read(Register.data)] == [3, 4])
        #expect(uart.read(Register.lsr) == 0x60)
        #expect(uart.read(Register.data) == 0)
    }

    @Test func receivedDataRaisesInterruptWhenEnabled() {
        let uart = UART()
        uart.write(Register.ier, 0x01)
        #expect(uart.irq.count == 0)  // nothing to receive yet
        uart.device.enqueueInput([0x61])
        #expect(uart.irq.count == 1)
        #expect(uart.read(Register.iir) == 0x04)
        #expect(uart.read(Register.iir) == 0x04)  // stays until the data is read
        #expect(uart.read(Register.data) == 0x61)
        #expect(uart.read(Register.iir) == 0x01)
        uart.device.enqueueInput([])
        #expect(uart.irq.count == 1)
        // Enabling RDI with data already waiting raises the line at once.
        uart.write(Register.ier, 0)
        uart.device.enqueueInput([0x62])
        uart.write(Register.ier, 0x01)
        #expect(uart.irq.count == 2)
    }

    @Test func receivedDataOutranksTHRE() {
        let uart = UART()
        uart.write(Register.ier, 0x03)
        uart.device.enqueueInput([9])
        #expect(uart.read(Register.iir) == 0x04)
        #expect(uart.read(Register.data) == 9)
        #expect(uart.read(Register.iir) == 0x02)  // the THRE from enabling it was still pending
        #expect(uart.read(Register.iir) == 0x01)
    }

    @Test func receiveFIFOIsBoundedAndCountsDrops() {
        let uart = UART()
        let capacity = Serial8250.receiveCapacity
        uart.device.enqueueInput((0..<capacity + 10).map { UInt8(truncatingIfNeeded: $0) })
        #expect(uart.device.droppedInput == 10)
        uart.write(Register.ier, 0x01)
        let before = uart.irq.count
        uart.device.enqueueInput([1, 2])  // full: dropped, and no interrupt for nothing
        #expect(uart.device.droppedInput == 12)
        #expect(uart.irq.count == before)
        let drained = (0..<capacity).map { _ in uart.read(Register.data) }
        #expect(drained == (0..<capacity).map { UInt8(truncatingIfNeeded: $0) })
        #expect(uart.read(Register.lsr) & 0x01 == 0)
        uart.device.enqueueInput([7])  // room again
        #expect(uart.read(Register.data) == 7)
        #expect(uart.device.droppedInput == 12)
    }

    @Test func divisorLatchSharesOffsetsZeroAndOneWithoutDisturbingIERAndTHR() {
        let uart = UART()
        uart.write(Register.ier, 0x01)
        uart.write(Register.lcr, 0x83)  // DLAB, 8N1
        uart.write(Register.data, 0x01)  // DLL: 115200 baud
        uart.write(Register.ier, 0x00)  // DLM
        #expect(uart.read(Register.data) == 0x01)
        #expect(uart.read(Register.ier) == 0x00)
        #expect(uart.output.bytes.isEmpty)
        uart.write(Register.lcr, 0x03)
        #expect(uart.read(Register.lcr) == 0x03)
        #expect(uart.read(Register.ier) == 0x01)
        uart.write(Register.data, 0x5a)
        #expect(uart.output.bytes == [0x5a])
        uart.write(Register.lcr, 0x83)
        #expect(uart.read(Register.data) == 0x01)
        #expect(uart.read(Register.ier) == 0x00)
    }

    @Test func loopbackReceivesWhatIsSent() {
        let uart = UART()
        uart.write(Register.ier, 0x01)
        uart.write(Register.mcr, 0x10)
        uart.write(Register.data, 0x33)
        #expect(uart.output.writes.values.isEmpty)
        #expect(uart.irq.count == 1)
        #expect(uart.read(Register.lsr) == 0x61)
        #expect(uart.read(Register.data) == 0x33)
        uart.write(Register.mcr, 0x08)
        uart.write(Register.data, 0x34)
        #expect(uart.output.bytes == [0x34])
        #expect(uart.read(Register.lsr) & 0x01 == 0)
    }

    @Test(arguments: [(UInt8(0x01), UInt8(0x20)), (0x02, 0x10), (0x04, 0x40), (0x08, 0x80), (0x0f, 0xf0), (0x00, 0x00)])
    func loopbackMirrorsModemControlInModemStatus(mcr: UInt8, msr: UInt8) {
        let uart = UART()
        #expect(uart.read(Register.msr) == 0xb0)  // DCD, DSR, CTS when not looped back
        uart.write(Register.mcr, 0x10 | mcr)
        #expect(uart.read(Register.mcr) == 0x10 | mcr)
        #expect(uart.read(Register.msr) == msr)
    }

    @Test func scratchRegisterRoundTrips() {
        let uart = UART()
        for value: UInt8 in [0x55, 0xaa, 0x00, 0xff] {
            uart.write(Register.scr, value)
            #expect(uart.read(Register.scr) == value)
        }
    }

    @Test func fcrClearsTheReceiveFIFO() {
        let uart = UART()
        uart.device.enqueueInput([1, 2, 3])
        uart.write(Register.fcr, 0x01)  // enable only: data stays
        #expect(uart.read(Register.lsr) & 0x01 == 1)
        uart.write(Register.fcr, 0x03)  // enable and clear RCVR
        #expect(uart.read(Register.lsr) == 0x60)
        #expect(uart.read(Register.iir) == 0xc1)
        uart.device.enqueueInput([4])
        #expect(uart.read(Register.data) == 4)
    }
}
