
/// How much output may still reach the agent in one call.
struct OutputBudget {
    let remaining: Int
    private(set) var passed = 0
    private(set) var exceeded = false

    init(remaining: Int) { self.remaining = remaining }

    /// Takes a chunk; returns the part of it that may pass, or nil when none may.
    mutating func take(_ chunk: [UInt8]) -> [UInt8]? {
        let allowed = max(0, min(chunk.count, remaining - passed))
        passed += allowed
        if allowed < chunk.count { exceeded = true }
        guard allowed > 0 else { return nil }
        return allowed == chunk.count ? chunk : Array(chunk[..<allowed])
    }
}
