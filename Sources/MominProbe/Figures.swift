/// Median and 99th percentile of a sample, in microseconds.
struct Latency {
    let median: Double
    let p99: Double
    let count: Int

    init(nanoseconds samples: [UInt64]) {
        let sorted = samples.sorted()
        count = sorted.count
        guard !sorted.isEmpty else {
            median = 0
            p99 = 0
            return
        }
        let middle = sorted.count / 2
        let medianNs = sorted.count % 2 == 1 ? Double(sorted[middle]) : (Double(sorted[middle - 1]) + Double(sorted[middle])) / 2
        // The nearest-rank percentile: the smallest sample with at least 99% at or below it.
        let rank = max(1, Int((Double(sorted.count) * 0.99).rounded(.up)))
        median = medianNs / 1000
        p99 = Double(sorted[rank - 1]) / 1000
    }
}

/// `value` with `digits` decimals, without Foundation's formatting.
func fixed(_ value: Double, _ digits: Int = 1) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = Int(scaled / scale)
    var text = (value < 0 && scaled > 0 ? "-" : "") + String(whole)
    if digits > 0 {
        let fraction = String(Int(scaled) - whole * Int(scale))
        text += "." + String(repeating: "0", count: digits - fraction.count) + fraction
    }
    return text
}
