/// An origin-form target (RFC 9112 §3.2.1) as a server reads it: the path and the query's
/// name=value pairs, %-decoded (RFC 3986 §2.1; `+` is a space in the query, as HTML forms
/// write it). Pure; fuzzed with the request heads (`http-head`).
public enum OriginTarget {
    /// The path and the query's pairs (a later repeat of a name is ignored); nil for a malformed
    /// escape, or one that decodes to bad UTF-8 or to NUL.
    public static func split(_ pathAndQuery: String) -> (path: String, query: [String: String])? {
        let parts = pathAndQuery.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard let path = decoded(parts[0], plusIsSpace: false) else { return nil }
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let halves = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let name = decoded(halves[0], plusIsSpace: true),
                      let value = halves.count == 2 ? decoded(halves[1], plusIsSpace: true) : "" else { return nil }
                if query[name] == nil { query[name] = value }
            }
        }
        return (path, query)
    }

    static func decoded(_ text: Substring, plusIsSpace: Bool) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(ChunkedDecoder.hexValue),
                      let low = iterator.next().flatMap(ChunkedDecoder.hexValue) else { return nil }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+") where plusIsSpace: bytes.append(0x20)
            default: bytes.append(byte)
            }
        }
        guard !bytes.contains(0) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }
}
