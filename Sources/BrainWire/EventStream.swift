/// One event of a `text/event-stream` as dispatched (HTML Living Standard §9.2.6): its type when
/// an `event` field named one, and its data lines joined with LF.
public struct ServerSentEvent: Sendable, Equatable {
    public var event: String?
    public var data: [UInt8]

    public init(event: String? = nil, data: [UInt8]) {
        self.event = event
        self.data = data
    }
}

/// Why an event stream was cut.
public struct EventStreamError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String

    init(_ description: String) { self.description = description }
}

/// An incremental reader of a `text/event-stream` body (HTML Living Standard §9.2.6,
/// "Interpreting an event stream"): bytes go in as they arrive, split anywhere, and the events
/// they complete come out. Lines end in CRLF, LF or CR; a UTF-8 BOM at the start is skipped;
/// comment lines and the `id` and `retry` fields are read and dropped. One event, its pending
/// line included, is bounded; past the bound the stream is refused (the relay then cuts it),
/// and the error is sticky.
public struct EventStreamScanner: Sendable {
    public let maximumEventBytes: Int

    /// The current line, without its end.
    var line: [UInt8] = []
    /// The data buffer (§9.2.6), each data line followed by LF.
    var data: [UInt8] = []
    /// The event type buffer; nil when no `event` field has set it.
    var eventType: [UInt8]?
    /// The last line ended in CR: an LF next (in this feed or the next) belongs to it.
    var afterCR = false
    /// How many bytes of a leading BOM (EF BB BF) have been seen; 3 once the BOM question is settled.
    var bomBytes = 0
    var failure: EventStreamError?

    public init(maximumEventBytes: Int = 1 << 20) {
        self.maximumEventBytes = maximumEventBytes
    }

    static let bom: [UInt8] = [0xEF, 0xBB, 0xBF]

    /// Reads the next bytes of the stream and returns the events they dispatch.
    public mutating func feed(_ bytes: ArraySlice<UInt8>) -> Result<[ServerSentEvent], EventStreamError> {
        if let failure { return .failure(failure) }
        var events: [ServerSentEvent] = []
        for byte in bytes {
            if bomBytes < 3 {
                // One BOM at the very start is skipped; a partial one was text after all.
                if byte == Self.bom[bomBytes] {
                    bomBytes += 1
                    continue
                }
                let held = Self.bom.prefix(bomBytes)
                bomBytes = 3
                for heldByte in held {
                    if let error = take(heldByte, into: &events) { return .failure(error) }
                }
            }
            if let error = take(byte, into: &events) { return .failure(error) }
        }
        return .success(events)
    }

    /// Ends the stream. An event without its closing blank line is discarded, as §9.2.6 says;
    /// the error says that the stream stopped inside one (the caller may only note it).
    public mutating func finish() -> Result<Void, EventStreamError> {
        if let failure { return .failure(failure) }
        let pending = (bomBytes < 3 ? bomBytes : 0) + line.count + data.count
        line = []
        data = []
        eventType = nil
        guard pending == 0 else { return .failure(EventStreamError("the stream ended inside an event (\(pending) bytes not dispatched)")) }
        return .success(())
    }

    mutating func take(_ byte: UInt8, into events: inout [ServerSentEvent]) -> EventStreamError? {
        if afterCR {
            afterCR = false
            // CRLF: the CR already ended the line.
            if byte == 0x0A { return nil }
        }
        switch byte {
        case 0x0D:
            afterCR = true
            return endOfLine(into: &events)
        case 0x0A:
            return endOfLine(into: &events)
        default:
            guard line.count + data.count < maximumEventBytes else {
                let error = EventStreamError("an event is longer than \(maximumEventBytes) bytes")
                failure = error
                return error
            }
            line.append(byte)
            return nil
        }
    }

    /// Processes one line (§9.2.6): blank dispatches, ":" is a comment, else a field.
    mutating func endOfLine(into events: inout [ServerSentEvent]) -> EventStreamError? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            // Dispatch: nothing when the data buffer is empty; its last LF removed.
            if !data.isEmpty {
                data.removeLast()
                let type = eventType.map { String(decoding: $0, as: UTF8.self) }
                events.append(ServerSentEvent(event: type?.isEmpty == true ? nil : type, data: data))
            }
            data = []
            eventType = nil
            return nil
        }
        if line.first == UInt8(ascii: ":") { return nil }
        let colon = line.firstIndex(of: UInt8(ascii: ":"))
        let name = line[..<(colon ?? line.endIndex)]
        var value = colon.map { line[($0 + 1)...] } ?? []
        if value.first == 0x20 { value = value.dropFirst() }
        if name.elementsEqual("data".utf8) {
            data += value
            data.append(0x0A)
            guard data.count <= maximumEventBytes else {
                let error = EventStreamError("an event is longer than \(maximumEventBytes) bytes")
                failure = error
                return error
            }
        } else if name.elementsEqual("event".utf8) {
            eventType = Array(value)
        }
        // id, retry and unknown fields are ignored: the relay passes the stream on as it came.
        return nil
    }
}
