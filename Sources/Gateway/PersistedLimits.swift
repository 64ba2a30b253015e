import Glibc
import Policy
import POSIX

/// The limits of a long-lived VM's session, kept in a small file next to its other state so
/// that every `momin exec` and `momin cp` counts against the same cycles and bytes. Each update
/// is a read-modify-write under flock(2) on the file; the wall time runs from `create`, on
/// CLOCK_BOOTTIME (which, unlike CLOCK_MONOTONIC, is shared by processes and counts suspend).
///
/// The file is four lines of text: `momin-limits 1`, `started NS`, `cycles N`, `output N`.
/// A file that does not read back is an error naming it, never a fresh start.
public final class PersistedLimits: SessionLimits {
    public let path: String
    private let limits: Limits

    /// Opens the usage file that `create` made.
    public init(path: String, limits: Limits) {
        self.path = path
        self.limits = limits
    }

    /// Makes the usage file of a session starting now (the file must not exist).
    public static func create(path: String) throws(GatewayError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .limitState("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try write(Usage(started: bootTime(), cycles: 0, outputBytes: 0), to: fd, path: path)
    }

    public func admitCall() throws(GatewayError) -> Policy.Decision {
        var decision: Policy.Decision?
        try update { tracker, elapsed in decision = tracker.admitCall(elapsed: elapsed) }
        return decision!
    }

    public func recordOutput(bytes: Int) throws(GatewayError) -> Policy.Decision {
        var decision: Policy.Decision?
        try update { tracker, elapsed in decision = tracker.recordOutput(bytes: bytes, elapsed: elapsed) }
        return decision!
    }

    public func remainingOutputBytes() throws(GatewayError) -> Int {
        var remaining = 0
        try update { tracker, _ in remaining = tracker.remainingOutputBytes }
        return remaining
    }

    public func remainingWallTime() throws(GatewayError) -> Duration {
        var remaining = Duration.zero
        try update { tracker, elapsed in remaining = tracker.remainingWallTime(elapsed: elapsed) }
        return remaining
    }

    struct Usage: Equatable {
        var started: UInt64
        var cycles: Int
        var outputBytes: Int
    }

    /// Reads the usage under an exclusive lock, applies `change`, and writes it back.
    private func update(_ change: (inout LimitTracker, Duration) -> Void) throws(GatewayError) {
        let fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw .limitState("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }  // closing drops the lock
        guard retryingEINTR({ flock(fd, LOCK_EX) }) == 0 else { throw .limitState("cannot lock \(path): \(describeErrno())") }
        let usage = try Self.read(fd, path: path)
        var tracker = LimitTracker(limits: limits, cyclesUsed: usage.cycles, outputBytesUsed: usage.outputBytes)
        let now = Self.bootTime()
        let elapsed = Duration.nanoseconds(Int64(clamping: now >= usage.started ? now - usage.started : 0))
        change(&tracker, elapsed)
        let changed = Usage(started: usage.started, cycles: tracker.cyclesUsed, outputBytes: tracker.outputBytesUsed)
        if changed != usage { try Self.write(changed, to: fd, path: path) }
    }

    static func bootTime() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_BOOTTIME, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    static func render(_ usage: Usage) -> String {
        "momin-limits 1\nstarted \(usage.started)\ncycles \(usage.cycles)\noutput \(usage.outputBytes)\n"
    }

    static func parse(_ text: String, path: String) throws(GatewayError) -> Usage {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        func field(_ index: Int, _ name: String) throws(GatewayError) -> UInt64 {
            let line = index < lines.count ? lines[index] : ""
            let parts = line.split(separator: " ")
            guard parts.count == 2, parts[0] == name, let value = UInt64(parts[1]) else {
                throw .limitState("\(path) line \(index + 1): expected '\(name) N', found '\(line.prefix(40))'")
            }
            return value
        }
        guard lines.first == "momin-limits 1" else {
            throw .limitState("\(path) is not a usage file of this version (line 1: '\(lines.first?.prefix(40) ?? "")')")
        }
        let started = try field(1, "started")
        let cycles = try field(2, "cycles")
        let output = try field(3, "output")
        return Usage(started: started, cycles: Int(clamping: cycles), outputBytes: Int(clamping: output))
    }

    private static func read(_ fd: Int32, path: String) throws(GatewayError) -> Usage {
        var bytes = [UInt8](repeating: 0, count: 256)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n >= 0 else { throw .limitState("cannot read \(path): \(String(cString: strerror(errno)))") }
        return try parse(String(decoding: bytes[..<n], as: UTF8.self), path: path)
    }

    /// Rewrites the file in place: it is small enough for one pwrite, and a reader holds the lock.
    private static func write(_ usage: Usage, to fd: Int32, path: String) throws(GatewayError) {
        let text = Array(render(usage).utf8)
        let n = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard n == text.count, ftruncate(fd, off_t(text.count)) == 0 else {
            throw .limitState("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
