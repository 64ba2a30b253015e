/// `--name value` options after the subcommand, parsed by hand: the probe needs nothing more.
struct Arguments {
    private var values: [String: String] = [:]
    private var used: Set<String> = []

    init(_ words: ArraySlice<String>) throws(ProbeError) {
        var rest = words
        while let word = rest.popFirst() {
            guard word.hasPrefix("--"), word.count > 2 else { throw .usage("unexpected argument '\(word)'") }
            var name = String(word.dropFirst(2))
            var value: String
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            } else {
                guard let next = rest.popFirst() else { throw .usage("--\(name) needs a value") }
                value = next
            }
            values[name] = value
        }
    }

    mutating func string(_ name: String, default fallback: String? = nil) throws(ProbeError) -> String {
        used.insert(name)
        guard let value = values[name] ?? fallback, !value.isEmpty else { throw .usage("--\(name) is required") }
        return value
    }

    mutating func integer<T: FixedWidthInteger>(_ name: String, default fallback: T? = nil, range: ClosedRange<T>) throws(ProbeError) -> T {
        used.insert(name)
        guard let text = values[name] else {
            if let fallback { return fallback }
            throw .usage("--\(name) is required")
        }
        guard let value = T(text), range.contains(value) else {
            throw .usage("--\(name) \(text) is not a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    mutating func seconds(_ name: String, default fallback: Double) throws(ProbeError) -> Double {
        used.insert(name)
        guard let text = values[name] else { return fallback }
        guard let value = Double(text), value > 0, value < 1e6 else { throw .usage("--\(name) \(text) is not a number of seconds") }
        return value
    }

    /// Refuses options the subcommand did not ask about.
    func finish() throws(ProbeError) {
        if let unknown = values.keys.sorted().first(where: { !used.contains($0) }) {
            throw .usage("unknown option --\(unknown)")
        }
    }
}
