/// URI references (RFC 3986): split into components as Appendix B reads them, and resolved
/// against a base URI (§5.2.2, with §5.2.3's merge and §5.2.4's dot-segment removal), for the
/// relative hrefs of a simple index page.
public struct URLReference: Sendable, Hashable, CustomStringConvertible {
    public var scheme: String?
    public var authority: String?
    public var path: String
    public var query: String?
    public var fragment: String?

    /// Appendix B: `^(([^:/?#]+):)?(//([^/?#]*))?([^?#]*)(\?([^#]*))?(#(.*))?`.
    public init(_ text: String) {
        let bytes = Array(text.utf8)
        var index = 0
        func isDelimiter(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: "/") || byte == UInt8(ascii: "?") || byte == UInt8(ascii: "#")
        }
        if let colon = bytes.firstIndex(where: { $0 == UInt8(ascii: ":") || isDelimiter($0) }), bytes[colon] == UInt8(ascii: ":"), colon > 0 {
            scheme = String(decoding: bytes[..<colon], as: UTF8.self)
            index = colon + 1
        }
        if bytes[index...].starts(with: "//".utf8) {
            let start = index + 2
            let end = bytes[start...].firstIndex(where: isDelimiter) ?? bytes.count
            authority = String(decoding: bytes[start..<end], as: UTF8.self)
            index = end
        }
        let pathEnd = bytes[index...].firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? bytes.count
        path = String(decoding: bytes[index..<pathEnd], as: UTF8.self)
        index = pathEnd
        if index < bytes.count, bytes[index] == UInt8(ascii: "?") {
            let end = bytes[(index + 1)...].firstIndex(of: UInt8(ascii: "#")) ?? bytes.count
            query = String(decoding: bytes[(index + 1)..<end], as: UTF8.self)
            index = end
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "#") {
            fragment = String(decoding: bytes[(index + 1)...], as: UTF8.self)
        }
    }

    /// §5.3, component recomposition.
    public var description: String {
        var text = ""
        if let scheme { text += scheme + ":" }
        if let authority { text += "//" + authority }
        text += path
        if let query { text += "?" + query }
        if let fragment { text += "#" + fragment }
        return text
    }

    /// The target of this reference with `base` as its base URI (§5.2.2, strict: a scheme in the
    /// reference makes it absolute).
    public func resolved(against base: URLReference) -> URLReference {
        var target = self
        if scheme != nil {
            target.path = URLReference.removeDotSegments(path)
            return target
        }
        target.scheme = base.scheme
        if authority != nil {
            target.path = URLReference.removeDotSegments(path)
            return target
        }
        target.authority = base.authority
        if path.isEmpty {
            target.path = base.path
            target.query = query ?? base.query
        } else if path.utf8.first == UInt8(ascii: "/") {
            target.path = URLReference.removeDotSegments(path)
        } else {
            target.path = URLReference.removeDotSegments(URLReference.merge(base, path))
        }
        return target
    }

    /// §5.2.3: the reference's path after the base path's last "/".
    static func merge(_ base: URLReference, _ path: String) -> String {
        if base.authority != nil && base.path.isEmpty { return "/" + path }
        let bytes = Array(base.path.utf8)
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return String(decoding: bytes[...slash], as: UTF8.self) + path
    }

    /// §5.2.4, the loop over the input buffer with its rules A to E.
    static func removeDotSegments(_ path: String) -> String {
        var input = Array(path.utf8)[...]
        var output: [UInt8] = []
        func removeLastSegment() {
            if let slash = output.lastIndex(of: UInt8(ascii: "/")) { output.removeSubrange(slash...) } else { output.removeAll() }
        }
        while !input.isEmpty {
            if input.starts(with: "../".utf8) {
                input = input.dropFirst(3)                                        // A
            } else if input.starts(with: "./".utf8) {
                input = input.dropFirst(2)                                        // A
            } else if input.starts(with: "/./".utf8) {
                input = input.dropFirst(2)                                        // B
            } else if input.elementsEqual("/.".utf8) {
                input = Array("/".utf8)[...]                                      // B
            } else if input.starts(with: "/../".utf8) {
                input = input.dropFirst(3)                                        // C
                removeLastSegment()
            } else if input.elementsEqual("/..".utf8) {
                input = Array("/".utf8)[...]                                      // C
                removeLastSegment()
            } else if input.elementsEqual(".".utf8) || input.elementsEqual("..".utf8) {
                input = input.dropFirst(input.count)                              // D
            } else {
                // E: the first segment, its leading "/" included, up to the next "/".
                let from = input.first == UInt8(ascii: "/") ? input.index(after: input.startIndex) : input.startIndex
                let end = input[from...].firstIndex(of: UInt8(ascii: "/")) ?? input.endIndex
                output += input[..<end]
                input = input[end...]
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Whether the scheme is http or https (without case), with a host.
    public var isHTTP: Bool {
        guard let scheme, let authority, !authority.isEmpty else { return false }
        let lowered = ASCII.lowercased(scheme)
        return lowered == "http" || lowered == "https"
    }
}
