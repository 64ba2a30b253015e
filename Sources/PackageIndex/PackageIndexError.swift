/// Why text from an agent's request, a package index or a wheel was refused: what was being read,
/// and what was wrong with it. Every parser in this module checks its bounds before it keeps
/// anything, and refuses with one of these rather than trapping.
public struct PackageIndexError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was being read.
    public enum Subject: String, Sendable, Equatable {
        case version = "version"
        case specifier = "version specifier"
        case projectName = "project name"
        case requirement = "requirement"
        case marker = "environment marker"
        case metadata = "core metadata"
        case wheelName = "wheel filename"
        case simpleIndex = "simple index page"
        case url = "URL"
    }

    public let subject: Subject
    public let reason: String

    init(_ subject: Subject, _ reason: String) {
        self.subject = subject
        self.reason = reason
    }

    public var description: String { "\(subject.rawValue): \(reason)" }
}

/// ASCII byte classes and the quoting of input in messages, shared by the parsers.
enum ASCII {
    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
    static func isLetter(_ byte: UInt8) -> Bool { (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) }
    static func isAlphanumeric(_ byte: UInt8) -> Bool { isDigit(byte) || isLetter(byte) }
    static func lower(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }
    static func isHexDigit(_ byte: UInt8) -> Bool { isDigit(byte) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66) }
    /// Python's str.strip() for the whitespace that can appear in ASCII text.
    static func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || (byte >= 0x09 && byte <= 0x0D) }

    static func lowercased(_ text: String) -> String {
        String(decoding: text.utf8.map(lower), as: UTF8.self)
    }

    /// Bytes without the whitespace at either end.
    static func trimmed<C: BidirectionalCollection<UInt8>>(_ bytes: C) -> C.SubSequence {
        var slice = bytes[...]
        while let first = slice.first, isWhitespace(first) { slice = slice.dropFirst() }
        while let last = slice.last, isWhitespace(last) { slice = slice.dropLast() }
        return slice
    }

    static func trimmed(_ text: String) -> String { String(decoding: trimmed(Array(text.utf8)), as: UTF8.self) }

    /// Strings compared as Python compares them, by code point (UTF-8 byte order is code point
    /// order), not by Swift's canonical equivalence.
    static func same(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }
    static func precedes(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    /// Input for a message: printable ASCII as is, other bytes as \xHH, at most 64 bytes, quoted.
    static func quote(_ bytes: some Collection<UInt8>) -> String {
        var out = "\""
        for byte in bytes.prefix(64) {
            if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return out + (bytes.count > 64 ? "…\"" : "\"")
    }

    static func quote(_ text: String) -> String { quote(Array(text.utf8.prefix(65))) }

    /// A decimal number that fits in UInt64, or nil (no sign, digits only, not empty).
    static func number(_ digits: some Collection<UInt8>) -> UInt64? {
        guard !digits.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in digits {
            guard isDigit(byte) else { return nil }
            let (shifted, overflow) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = shifted.addingReportingOverflow(UInt64(byte - 0x30))
            guard !overflow, !overflow2 else { return nil }
            value = next
        }
        return value
    }
}
