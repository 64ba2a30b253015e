/// An incremental decoder of the chunked transfer coding (RFC 9112 §7.1): bytes go in as they
/// arrive, split anywhere, and the data they carry comes out. Every line is bounded, sizes are
/// checked for overflow before they are kept, and an error is sticky: once the body is known to
/// be malformed, every later `feed` fails with the same error.
///
/// The body ends after the last chunk and the trailer section; bytes after that end are an error
/// (nothing may follow a response on a connection that carries one request).
public struct ChunkedDecoder: Sendable {
    /// The longest chunk-size line, chunk extensions included (they are ignored, §7.1.1).
    public static let maximumSizeLineBytes = 1 << 10
    /// The longest trailer section (its fields are read and dropped, §7.1.2).
    public static let maximumTrailerBytes = 16 << 10

    enum State: Sendable {
        /// Reading a chunk-size line, `line` so far (CR excluded).
        case sizeLine
        /// Inside a chunk's data, this many bytes still to come.
        case data(UInt64)
        /// After a chunk's data: its CR, then its LF.
        case dataCR, dataLF
        /// Reading trailer lines (or the final empty line), `line` so far.
        case trailer
        case finished
        case failed(ChunkedError)
    }

    var state = State.sizeLine
    var line: [UInt8] = []
    /// The line's CR was seen; the next byte must be LF.
    var sawCR = false
    var trailerBytes = 0

    public init() {}

    /// Whether the last chunk and the trailer section have been read: the body is complete.
    public var isFinished: Bool {
        if case .finished = state { return true }
        return false
    }

    /// Decodes `bytes`, the next bytes of the body, and returns the chunk data they complete.
    public mutating func feed(_ bytes: ArraySlice<UInt8>) -> Result<[UInt8], ChunkedError> {
        if case .failed(let error) = state { return .failure(error) }
        var out: [UInt8] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            switch state {
            case .data(let remaining):
                // Whole runs of data at once; `remaining` is never narrowed without the min.
                let available = UInt64(bytes.endIndex - index)
                let take = Int(min(remaining, available))
                out.append(contentsOf: bytes[index..<(index + take)])
                index += take
                state = remaining == UInt64(take) ? .dataCR : .data(remaining - UInt64(take))
                continue
            case .dataCR:
                guard bytes[index] == 0x0D else { return fail("a chunk's data is not followed by CRLF (RFC 9112 §7.1)") }
                state = .dataLF
            case .dataLF:
                guard bytes[index] == 0x0A else { return fail("a chunk's data is not followed by CRLF (RFC 9112 §7.1)") }
                state = .sizeLine
            case .sizeLine, .trailer:
                if let error = lineByte(bytes[index]) { return .failure(error) }
            case .finished:
                return fail("bytes after the end of the chunked body")
            case .failed(let error):
                return .failure(error)
            }
            index += 1
        }
        return .success(out)
    }

    /// One byte of a size line or a trailer line; lines end in CRLF only (RFC 9112 §2.2).
    mutating func lineByte(_ byte: UInt8) -> ChunkedError? {
        if sawCR {
            guard byte == 0x0A else { return failed("a bare CR in a chunk-size or trailer line (RFC 9112 §2.2)") }
            sawCR = false
            return endOfLine()
        }
        if byte == 0x0D {
            sawCR = true
            return nil
        }
        if byte == 0x0A { return failed("a chunk-size or trailer line ends in a bare LF (RFC 9112 §2.2)") }
        if case .trailer = state {
            trailerBytes += 1
            guard trailerBytes <= Self.maximumTrailerBytes else { return failed("the trailer section is longer than \(Self.maximumTrailerBytes) bytes") }
            // Only the line's emptiness matters: keep one byte to know it had some.
            if line.isEmpty { line.append(byte) }
            return nil
        }
        guard line.count < Self.maximumSizeLineBytes else { return failed("a chunk-size line is longer than \(Self.maximumSizeLineBytes) bytes") }
        line.append(byte)
        return nil
    }

    mutating func endOfLine() -> ChunkedError? {
        defer { line.removeAll(keepingCapacity: true) }
        if case .trailer = state {
            // trailer-section = *( field-line CRLF ), then CRLF (§7.1.2): the empty line ends it.
            if line.isEmpty { state = .finished }
            trailerBytes += 2
            guard trailerBytes <= Self.maximumTrailerBytes else { return failed("the trailer section is longer than \(Self.maximumTrailerBytes) bytes") }
            return nil
        }
        switch Self.chunkSize(line[...]) {
        case .failure(let error):
            state = .failed(error)
            return error
        case .success(0):
            // last-chunk = 1*("0") [ chunk-ext ] CRLF (§7.1).
            state = .trailer
        case .success(let size):
            state = .data(size)
        }
        return nil
    }

    /// chunk = chunk-size [ chunk-ext ] CRLF; chunk-size = 1*HEXDIG; chunk-ext = *( BWS ";" BWS
    /// chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) (§7.1, §7.1.1). The extensions are only
    /// checked for control characters, then ignored.
    static func chunkSize(_ line: ArraySlice<UInt8>) -> Result<UInt64, ChunkedError> {
        var size: UInt64 = 0
        var digits = 0
        var index = line.startIndex
        while index < line.endIndex, let digit = hexValue(line[index]) {
            // Checked before the shift: a size past UInt64 never wraps.
            guard size <= UInt64.max >> 4 else { return .failure(ChunkedError("a chunk size does not fit in 64 bits")) }
            size = size << 4 | UInt64(digit)
            digits += 1
            index += 1
        }
        guard digits > 0 else { return .failure(ChunkedError("a chunk-size line does not start with a hexadecimal size: \(HeadLines.printable(line))")) }
        // Whitespace after the size only before an extension's ";" (BWS).
        var rest = line[index...]
        while let first = rest.first, first == 0x20 || first == 0x09 { rest = rest.dropFirst() }
        guard (rest.isEmpty && index == line.endIndex) || rest.first == UInt8(ascii: ";") else {
            return .failure(ChunkedError("a chunk size is followed by something other than an extension: \(HeadLines.printable(line))"))
        }
        guard rest.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
            return .failure(ChunkedError("a chunk extension has control characters"))
        }
        return .success(size)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x41...0x46: byte - 0x41 + 10
        case 0x61...0x66: byte - 0x61 + 10
        default: nil
        }
    }

    mutating func failed(_ description: String) -> ChunkedError {
        let error = ChunkedError(description)
        state = .failed(error)
        return error
    }

    mutating func fail(_ description: String) -> Result<[UInt8], ChunkedError> {
        .failure(failed(description))
    }
}

/// Why a chunked body was refused. A relay answers 502 for a server's body and 400 for a client's.
public struct ChunkedError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String

    init(_ description: String) { self.description = description }
}
