import Doors
import Policy

/// A policy file as `momin policy check`, `momin run --policy` and `hands spawn` read it: the
/// first byte picks YAML or JSON, the rest is the file. A policy that loads is no wider than
/// itself, and judging calls with it never fails.
enum PolicyTarget {
    static func run(_ input: [UInt8]) {
        guard let first = input.first, let text = String(validating: input.dropFirst(), as: UTF8.self) else { return }
        guard let policy = try? AgentPolicy.parse(text, format: first & 1 == 0 ? .yaml : .json, file: "fuzz") else { return }
        let widenings = policy.widenings(over: policy)
        guard widenings.isEmpty else { violated("a policy is wider than itself: \(widenings)") }
        for call in NarrowingTarget.calls { _ = policy.evaluate(call, resolver: LexicalResolver()) }
    }
}
