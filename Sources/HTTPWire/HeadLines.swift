/// What request and response heads share (RFC 9112 §2.2, §5): finding the blank line that ends a
/// head, splitting it into CRLF lines, and reading one field line. Each returns a `HeadProblem`
/// that the request and response parsers turn into their own error with their own status.
struct HeadProblem: Error {
    enum Kind { case malformed, tooLong }
    let kind: Kind
    let message: String

    init(_ message: String, kind: Kind = .malformed) {
        self.kind = kind
        self.message = message
    }
}

enum HeadLines {
    /// Where a head ends in `bytes` (just past its blank line), nil when it has not ended yet; a
    /// `.tooLong` problem once `maximum` bytes have come without an end. A bare LF is refused as
    /// soon as it is seen: it would never end the head.
    static func end(_ bytes: some Collection<UInt8>, maximum: Int, what: String) -> Result<Int?, HeadProblem> {
        var matched = 0
        var index = 0
        var previous: UInt8 = 0
        let terminator: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A]
        for byte in bytes {
            index += 1
            if byte == 0x0A && previous != 0x0D {
                return .failure(HeadProblem("a line ends in a bare LF; lines end in CRLF (RFC 9112 §2.2)"))
            }
            previous = byte
            if byte == terminator[matched] {
                matched += 1
                if matched == 4 { return .success(index) }
            } else {
                matched = byte == 0x0D ? 1 : 0
            }
            if index >= maximum { break }
        }
        if index >= maximum { return .failure(HeadProblem("the \(what) head is longer than \(maximum) bytes", kind: .tooLong)) }
        return .success(nil)
    }

    /// The lines of a whole head that ends with its blank line, the blank line left out: at least
    /// one (the start line). Lines end in CRLF only; no bare CR, no NUL.
    static func split(_ bytes: ArraySlice<UInt8>, maximum: Int, what: String) -> Result<[ArraySlice<UInt8>], HeadProblem> {
        guard bytes.count <= maximum else { return .failure(HeadProblem("the \(what) head is longer than \(maximum) bytes", kind: .tooLong)) }
        guard bytes.count >= 4, bytes.suffix(4).elementsEqual([0x0D, 0x0A, 0x0D, 0x0A]) else {
            return .failure(HeadProblem("the \(what) head does not end with an empty line"))
        }
        var lines: [ArraySlice<UInt8>] = []
        var start = bytes.startIndex
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == 0x0A {
                guard index > start, bytes[index - 1] == 0x0D else {
                    return .failure(HeadProblem("a line ends in a bare LF; lines end in CRLF (RFC 9112 §2.2)"))
                }
                lines.append(bytes[start..<(index - 1)])
                start = index + 1
            } else if byte == 0x0D, index + 1 < bytes.endIndex, bytes[index + 1] != 0x0A {
                return .failure(HeadProblem("a bare CR inside a line (RFC 9112 §2.2)"))
            } else if byte == 0 {
                return .failure(HeadProblem("a NUL byte in the \(what) head"))
            }
            index += 1
        }
        // The last two lines are the last field's line end and the empty line.
        guard lines.count >= 2, lines.last!.isEmpty else { return .failure(HeadProblem("the \(what) head does not end with an empty line")) }
        lines.removeLast()
        return .success(lines)
    }

    /// field-line = field-name ":" OWS field-value OWS (RFC 9112 §5).
    static func field(_ line: ArraySlice<UInt8>) -> Result<HeaderField, HeadProblem> {
        if line.first == 0x20 || line.first == 0x09 {
            return .failure(HeadProblem("a folded header line (obsolete line folding, RFC 9112 §5.2)"))
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return .failure(HeadProblem("a header line without \":\"")) }
        let name = line[..<colon]
        guard !name.isEmpty, name.allSatisfy(isTokenByte) else {
            return .failure(HeadProblem("the header name \(printable(name)) is not a token (no spaces before \":\", RFC 9112 §5.1)"))
        }
        var value = line[(colon + 1)...]
        while let first = value.first, first == 0x20 || first == 0x09 { value = value.dropFirst() }
        while let last = value.last, last == 0x20 || last == 0x09 { value = value.dropLast() }
        guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
            return .failure(HeadProblem("the value of \(printable(name)) has control characters"))
        }
        return .success(HeaderField(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self)))
    }

    /// tchar (RFC 9110 §5.6.2).
    static func isTokenByte(_ byte: UInt8) -> Bool {
        if (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) { return true }
        return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
    }

    /// Bytes for an error message: printable ASCII as is, others as `\xHH`, at most 64.
    static func printable(_ bytes: some Collection<UInt8>) -> String {
        var out = "\""
        for byte in bytes.prefix(64) {
            if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") { out.unicodeScalars.append(Unicode.Scalar(byte)) } else {
                out += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return out + (bytes.count > 64 ? "…\"" : "\"")
    }
}
