import Devices

/// One vsock stream connection (virtio 1.2 §5.10.6) driven by the input: packets a guest sends
/// on it, interleaved with what the host socket does (bytes readable, written, EOF, hang-up)
/// and the RX buffers the muxer fills, as `VsockMuxer` drives it. After every step the credit
/// accounting must hold (§5.10.6.3): the guest never gets more data than its advertised buffer,
/// the bytes queued for the host never exceed ours, and every header we send names this
/// connection and carries our credit.
enum VsockConnectionTarget {
    static let guestCID: UInt64 = 3
    static let hostPort: UInt32 = 1_000_000
    static let guestPort: UInt32 = 52

    /// Reads the input front to back; past its end every field reads as zero.
    struct Reader {
        let bytes: [UInt8]
        var at = 0
        var isEmpty: Bool { at >= bytes.count }
        mutating func byte() -> UInt8 {
            defer { at += 1 }
            return at < bytes.count ? bytes[at] : 0
        }
        mutating func u16() -> UInt16 { UInt16(byte()) | UInt16(byte()) << 8 }
        mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    }

    static func run(_ input: [UInt8]) {
        var reader = Reader(bytes: input)
        // Our buffer: 256 B to 128 KiB, small enough that a guest can overrun it.
        let bufferSize = UInt32(1) << (8 + UInt32(reader.byte() % 10))
        var connection: VsockConnection
        if reader.byte() & 1 == 0 {
            connection = .hostInitiated(guestCID: guestCID, hostPort: hostPort, guestPort: guestPort, bufferSize: bufferSize)
        } else {
            connection = .guestInitiated(guestHeader(.request, flags: 0, allocation: reader.u32(), forwarded: reader.u32()),
                                         bufferSize: bufferSize)
        }
        var steps = 0
        while !reader.isEmpty, steps < 4096 {
            steps += 1
            let wasClosing = connection.state == .closing
            switch reader.byte() % 8 {
            case 0, 1:
                // A packet from the guest: any op (0 and 8 are none §5.10.6 defines), any flags
                // and credit, a payload of up to 64 KiB + 1.
                let op = UInt16(reader.byte() % 9)
                let flags = UInt32(reader.byte())
                let header = guestHeader(op, flags: flags, allocation: reader.u32(), forwarded: reader.u32())
                let payload = [UInt8](repeating: 0x5a, count: Int(reader.u16()) + (reader.byte() & 1 == 0 ? 0 : 1))
                let queued = connection.queuedGuestBytes
                let verdict = connection.receive(header, payload: payload)
                if verdict == .closed && header.operation != .rst { violated("a \(op) packet closed the connection") }
                if verdict == .accepted && !wasClosing && header.operation == .rw
                    && connection.queuedGuestBytes != queued + payload.count {
                    violated("an accepted RW of \(payload.count) bytes queued \(connection.queuedGuestBytes - queued)")
                }
                if verdict == .closed { return }  // the muxer forgets the connection
            case 2:
                connection.hostReadable = true
            case 3:
                // The host socket took some of the queued bytes (the preamble first).
                connection.flushed(Int(reader.u16()))
            case 4:
                connection.hostReachedEOF()
            case 5:
                connection.hostHungUp = true
            case 6:
                fillRXBuffer(&connection, &reader)
            default:
                if reader.byte() & 7 == 0 { connection.kill() }
            }
            check(connection, wasClosing: wasClosing)
        }
    }

    /// One RX buffer with room for up to 64 KiB of payload, filled as `VsockMuxer.produce` does:
    /// a control packet if one is owed, else data within the guest's credit.
    static func fillRXBuffer(_ connection: inout VsockConnection, _ reader: inout Reader) {
        let maxPayload = Int(reader.u16())
        if let header = connection.nextControlPacket() {
            checkSent(header, connection)
            if header.operation == .rw { violated("a control packet is RW") }
            return
        }
        guard connection.canSendData else { return }
        let creditBefore = connection.peerCredit
        let room = min(maxPayload, Int(creditBefore), Vsock.maximumPayload)
        if room == 0 { return checkSent(connection.creditUpdatePacket(), connection) }
        // What the host socket's read gave: some bytes, EOF, nothing yet, or an error.
        switch reader.byte() % 4 {
        case 0, 1:
            let length = 1 + Int(reader.u16()) % room
            let header = connection.dataPacket(length: length)
            checkSent(header, connection)
            guard header.operation == .rw, header.length == UInt32(length), UInt32(length) <= creditBefore else {
                violated("a data packet of \(header.length) bytes with \(creditBefore) of credit")
            }
        case 2: connection.hostReachedEOF()
        default: connection.hostReadable = false
        }
    }

    static func guestHeader(_ op: VsockOp, flags: UInt32, allocation: UInt32, forwarded: UInt32) -> VsockHeader {
        guestHeader(op.rawValue, flags: flags, allocation: allocation, forwarded: forwarded)
    }

    static func guestHeader(_ op: UInt16, flags: UInt32, allocation: UInt32, forwarded: UInt32) -> VsockHeader {
        VsockHeader(sourceCID: guestCID, destinationCID: Vsock.hostCID, sourcePort: guestPort, destinationPort: hostPort,
                    op: op, flags: flags, bufferAllocation: allocation, forwardCount: forwarded)
    }

    /// Every header we send names this connection and carries our current credit (§5.10.6.3).
    static func checkSent(_ header: VsockHeader, _ connection: VsockConnection) {
        guard header.sourceCID == Vsock.hostCID, header.destinationCID == guestCID, header.sourcePort == hostPort,
              header.destinationPort == guestPort, header.type == Vsock.typeStream else {
            violated("a header for another connection: \(header)")
        }
        guard header.bufferAllocation == connection.bufferSize, header.forwardCount == connection.forwardCount else {
            violated("a header with credit \(header.bufferAllocation)/\(header.forwardCount), not \(connection.bufferSize)/\(connection.forwardCount)")
        }
        if connection.state == .closing && header.operation != .rst { violated("a \(header.op) packet from a closing connection") }
    }

    static func check(_ connection: VsockConnection, wasClosing: Bool) {
        if wasClosing && connection.state != .closing { violated("a closing connection came back to \(connection.state)") }
        // The guest can queue no more than the buffer we advertise.
        guard connection.queuedGuestBytes >= 0, connection.queuedGuestBytes <= Int(connection.bufferSize) else {
            violated("\(connection.queuedGuestBytes) guest bytes queued for a \(connection.bufferSize)-byte buffer")
        }
        if connection.state != .closing, connection.receivedCount &- connection.forwardCount != UInt32(connection.queuedGuestBytes) {
            violated("received \(connection.receivedCount) - forwarded \(connection.forwardCount) is not the \(connection.queuedGuestBytes) queued")
        }
        if connection.guestCredit > connection.bufferSize { violated("credit \(connection.guestCredit) past the buffer") }
        if connection.state == .closing && (connection.queuedGuestBytes != 0 || connection.canSendData) {
            violated("a closing connection still moves data")
        }
        if connection.canSendData && (connection.hostStoppedSending || connection.guestStoppedReceiving) {
            violated("data may flow after a shutdown")
        }
    }
}
