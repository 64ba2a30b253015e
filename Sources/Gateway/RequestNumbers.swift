import Synchronization

/// Request ids for the sessions that share one log: each call gets the next, from 1.
public final class RequestNumbers: Sendable {
    private let last = Atomic<UInt64>(0)

    public init() {}

    public func next() -> UInt64 {
        last.wrappingAdd(1, ordering: .relaxed).newValue
    }
}
