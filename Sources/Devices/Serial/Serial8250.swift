/// Where a serial port's transmitted bytes go.
import POSIX

public protocol SerialOutput: Sendable {
    func write(_ bytes: [UInt8])
}

/// A 16550A UART as the Linux 8250 driver sees it (register map per the National Semiconductor
/// PC16550D datasheet). Enough for the console: transmit, receive with a FIFO, the THR-empty and
/// data-ready interrupts, divisor latch, scratch register and loopback (the driver's autoconfig
/// uses loopback and the FIFO bits of IIR to identify a 16550A).
public final class Serial8250: BusDevice, @unchecked Sendable {
    // Register offsets (DLAB = 0 unless noted).
    static let data = 0               // RBR (read) / THR (write); DLL when DLAB = 1
    static let interruptEnable = 1    // IER; DLM when DLAB = 1
    static let interruptIdentify = 2  // IIR (read) / FCR (write)
    static let lineControl = 3        // LCR
    static let modemControl = 4       // MCR
    static let lineStatus = 5         // LSR
    static let modemStatus = 6        // MSR
    static let scratch = 7            // SCR

    // IER bits.
    static let ierReceivedData: UInt8 = 0x01
    static let ierTransmitterEmpty: UInt8 = 0x02
    // IIR values: bit 0 set = nothing pending; FIFO-enabled bits 6–7.
    static let iirNone: UInt8 = 0x01
    static let iirTransmitterEmpty: UInt8 = 0x02
    static let iirReceivedData: UInt8 = 0x04
    static let iirFIFOEnabled: UInt8 = 0xc0
    // LSR bits.
    static let lsrDataReady: UInt8 = 0x01
    static let lsrTransmitterHoldingEmpty: UInt8 = 0x20
    static let lsrTransmitterEmpty: UInt8 = 0x40
    // LCR / MCR bits.
    static let lcrDivisorLatch: UInt8 = 0x80
    static let mcrLoopback: UInt8 = 0x10
    // In loopback, MCR's DTR/RTS/OUT1/OUT2 appear as MSR's DSR/CTS/RI/DCD.
    static let msrIdleLines: UInt8 = 0xb0  // DCD, DSR, CTS asserted when not looped back

    /// Guest-queued input is bounded; more is dropped (and counted) rather than buffered forever.
    public static let receiveCapacity = 4096

    private let lock = Lock()
    private let output: any SerialOutput
    private let interrupt: any InterruptLine

    private var ier: UInt8 = 0
    private var lcr: UInt8 = 0x03
    private var mcr: UInt8 = 0x08
    private var scr: UInt8 = 0
    private var dll: UInt8 = 0x0c     // 9600 baud
    private var dlm: UInt8 = 0
    private var fifoEnabled = false
    private var transmitterEmptyPending = false
    private var receive: [UInt8] = []
    private var receiveHead = 0
    public private(set) var droppedInput = 0

    public init(output: any SerialOutput, interrupt: any InterruptLine) {
        self.output = output
        self.interrupt = interrupt
    }

    /// Bytes typed at the host end, delivered to the guest with a data-ready interrupt.
    public func enqueueInput(_ bytes: [UInt8]) {
        let raise: Bool = lock.withLock {
            let room = Self.receiveCapacity - (receive.count - receiveHead)
            let accepted = bytes.prefix(max(room, 0))
            droppedInput += bytes.count - accepted.count
            receive.append(contentsOf: accepted)
            return !accepted.isEmpty && ier & Self.ierReceivedData != 0
        }
        if raise { interrupt.trigger() }
    }

    public func read(offset: UInt64, into data: inout [UInt8]) {
        guard !data.isEmpty else { return }
        data[0] = lock.withLock { readRegister(Int(offset)) }
    }

    public func write(offset: UInt64, data: [UInt8]) {
        guard let value = data.first else { return }
        let (bytesOut, raise) = lock.withLock { writeRegister(Int(offset), value) }
        if let bytesOut { output.write(bytesOut) }
        if raise { interrupt.trigger() }
    }

    private var hasInput: Bool { receiveHead < receive.count }

    private func readRegister(_ register: Int) -> UInt8 {
        let dlab = lcr & Self.lcrDivisorLatch != 0
        switch register {
        case Self.data where dlab: return dll
        case Self.data:
            guard hasInput else { return 0 }
            let b = receive[receiveHead]
            receiveHead += 1
            if receiveHead == receive.count { receive.removeAll(keepingCapacity: true); receiveHead = 0 }
            return b
        case Self.interruptEnable where dlab: return dlm
        case Self.interruptEnable: return ier
        case Self.interruptIdentify:
            let fifo = fifoEnabled ? Self.iirFIFOEnabled : 0
            // Received data outranks THR empty (16550 interrupt priority table).
            if ier & Self.ierReceivedData != 0 && hasInput { return Self.iirReceivedData | fifo }
            if ier & Self.ierTransmitterEmpty != 0 && transmitterEmptyPending {
                transmitterEmptyPending = false  // reading IIR clears the THRE source
                return Self.iirTransmitterEmpty | fifo
            }
            return Self.iirNone | fifo
        case Self.lineControl: return lcr
        case Self.modemControl: return mcr
        case Self.lineStatus:
            return Self.lsrTransmitterHoldingEmpty | Self.lsrTransmitterEmpty | (hasInput ? Self.lsrDataReady : 0)
        case Self.modemStatus:
            if mcr & Self.mcrLoopback != 0 {
                // DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD.
                return (mcr & 0x01) << 5 | (mcr & 0x02) << 3 | (mcr & 0x04) << 4 | (mcr & 0x08) << 4
            }
            return Self.msrIdleLines
        case Self.scratch: return scr
        default: return 0
        }
    }

    /// Returns bytes to transmit and whether to raise the interrupt line.
    private func writeRegister(_ register: Int, _ value: UInt8) -> ([UInt8]?, Bool) {
        let dlab = lcr & Self.lcrDivisorLatch != 0
        switch register {
        case Self.data where dlab:
            dll = value
        case Self.data:
            if mcr & Self.mcrLoopback != 0 {
                // Loopback: what is sent is received.
                if receive.count - receiveHead < Self.receiveCapacity { receive.append(value) }
                return (nil, ier & Self.ierReceivedData != 0)
            }
            // Transmission is instant, so THR is empty again at once.
            transmitterEmptyPending = true
            return ([value], ier & Self.ierTransmitterEmpty != 0)
        case Self.interruptEnable where dlab:
            dlm = value
        case Self.interruptEnable:
            let newlyEnabledTHRE = value & Self.ierTransmitterEmpty != 0 && ier & Self.ierTransmitterEmpty == 0
            ier = value & 0x0f
            // Enabling THRE interrupts while THR is empty raises one (the driver relies on it).
            if newlyEnabledTHRE { transmitterEmptyPending = true; return (nil, true) }
            if ier & Self.ierReceivedData != 0 && hasInput { return (nil, true) }
        case Self.interruptIdentify:
            fifoEnabled = value & 0x01 != 0
            if value & 0x02 != 0 { receive.removeAll(keepingCapacity: true); receiveHead = 0 }
        case Self.lineControl:
            lcr = value
        case Self.modemControl:
            mcr = value & 0x1f
        case Self.scratch:
            scr = value
        default:
            break  // LSR and MSR are read-only.
        }
        return (nil, false)
    }
}
