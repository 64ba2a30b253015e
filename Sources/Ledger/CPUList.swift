/// The kernel's cpulist format (Documentation/admin-guide/kernel-parameters.rst, "CPU lists"):
/// comma-separated ids and ranges such as "0-3,8,10-11", a range optionally strided as
/// "0-15:2/4" (the first 2 of every group of 4). The sysfs files end with a newline.
public enum CPUList {
    /// The largest id read: the kernel's NR_CPUS tops out at 8192.
    public static let maximumID = 8191

    /// The CPUs `text` names, sorted, each once (overlapping items are allowed, as in the
    /// kernel). Surrounding white space is ignored; empty text is the empty list.
    public static func parse(_ text: String) throws(CPUListError) -> [Int] {
        let trimmed = text.trimmingWhitespace()
        if trimmed.isEmpty { return [] }
        var seen = Set<Int>()
        for item in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            func failure(_ why: String) -> CPUListError { CPUListError(text: String(trimmed), item: String(item), why: why) }
            if item.isEmpty { throw failure("is empty (two commas, or a comma at an end)") }
            let (rangeText, strideText) = item.splitOnce(":")
            let (firstText, lastText) = rangeText.splitOnce("-")
            let first = try number(firstText, failure)
            let last = try lastText.map { (text) throws(CPUListError) in try number(text, failure) } ?? first
            guard first <= last else { throw failure("is a range that runs backwards") }
            var used = 1
            var group = 1
            if let strideText {
                guard lastText != nil else { throw failure("has a stride but is not a range") }
                let (usedText, groupText) = strideText.splitOnce("/")
                guard let groupText else { throw failure("has a stride without \"/GROUP\"") }
                used = try number(usedText, failure)
                group = try number(groupText, failure)
                guard used >= 1, used <= group else { throw failure("has a stride that uses \(used) of every \(group)") }
            }
            var cpu = first
            while cpu <= last {
                if (cpu - first) % group < used { seen.insert(cpu) }
                cpu += 1
            }
        }
        return seen.sorted()
    }

    /// The shortest cpulist for `cpus`, as the kernel prints it: runs as "a-b", in order.
    public static func format(_ cpus: some Sequence<Int>) -> String {
        let sorted = Set(cpus).sorted()
        var parts: [String] = []
        var index = 0
        while index < sorted.count {
            var end = index
            while end + 1 < sorted.count, sorted[end + 1] == sorted[end] + 1 { end += 1 }
            parts.append(end == index ? "\(sorted[index])" : "\(sorted[index])-\(sorted[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }

    private static func number(_ text: Substring, _ failure: (String) -> CPUListError) throws(CPUListError) -> Int {
        guard !text.isEmpty else { throw failure("has a missing number") }
        guard text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { throw failure("has \"\(text)\", which is not a number") }
        guard text.utf8.count <= 5, let value = Int(text), value <= maximumID else {
            throw failure("names CPU \(text), above the largest id \(maximumID)")
        }
        return value
    }
}

/// A cpulist that could not be read: the whole text, the comma-separated item and what is wrong.
public struct CPUListError: Error, Equatable, Sendable, CustomStringConvertible {
    public let text: String
    public let item: String
    public let why: String

    public var description: String { "cpulist \"\(text)\": item \"\(item)\" \(why)" }
}

extension Substring {
    /// The text before and after the first `separator`; nil after when there is none.
    func splitOnce(_ separator: Character) -> (Substring, Substring?) {
        guard let index = firstIndex(of: separator) else { return (self, nil) }
        return (self[..<index], self[self.index(after: index)...])
    }
}

extension String {
    /// Without leading and trailing spaces, tabs and line ends.
    func trimmingWhitespace() -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return self[first...last]
    }
}
