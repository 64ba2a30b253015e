import Doors

/// How a sub-agent's command ended, with the tail of what it wrote.
public struct ChildOutcome: Sendable, Equatable {
    public enum Status: Sendable, Equatable {
        case exited(Int)
        case signaled(Int)
        /// The command did not run to its end: denied, stopped, or its VM failed.
        case failed(HandsFailure, String)
    }
    public var status: Status
    public var stdout: [UInt8] = []
    public var stderr: [UInt8] = []
}

/// The last `limit` bytes written.
struct OutputTail {
    let limit: Int
    private(set) var bytes: [UInt8] = []

    init(limit: Int) { self.limit = limit }

    mutating func add(_ chunk: [UInt8]) {
        bytes += chunk
        if bytes.count > limit { bytes.removeFirst(bytes.count - limit) }
    }
}
