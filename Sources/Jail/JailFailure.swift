import Glibc
import POSIX

/// A step of building the jail that failed: the step, as a message names it ("pivot_root into
/// /run/momin/jail/a"), and errno's text or a detail. The jailer stops at the first one.
public struct JailFailure: Error, CustomStringConvertible {
    public let step: String
    public let errno: Int32
    public let detail: String?

    public init(step: String, errno: Int32) {
        self.step = step
        self.errno = errno
        self.detail = nil
    }

    public init(step: String, detail: String) {
        self.step = step
        self.errno = 0
        self.detail = detail
    }

    public var description: String { "\(step): \(detail ?? String(cString: strerror(errno)))" }
}

/// The one funnel for the jailer's system calls: retries EINTR, turns -1 into a `JailFailure`
/// naming the step.
@discardableResult
func system(_ step: @autoclosure () -> String, _ call: () -> Int32) throws(JailFailure) -> Int32 {
    while true {
        let rc = call()
        if rc != -1 { return rc }
        let code = errno
        if code == EINTR { continue }
        throw JailFailure(step: step(), errno: code)
    }
}

/// Lines on stderr, written straight to fd 2 (no buffering to lose at _exit or execve).
public enum Diagnostics {
    public static func report(_ line: String) {
        try? FileIO.writeAll(2, Array(("momin-jailer: " + line + "\n").utf8))
    }
}

/// The jailer's own exit statuses, apart from the program's (which pass through).
public enum JailerStatus {
    /// The jail could not be built (bad arguments or a failed step); nothing was executed.
    public static let setupFailed: Int32 = 125
    /// execve(2) of the program failed for a reason other than a missing file.
    public static let cannotExecute: Int32 = 126
    /// The program does not exist inside the jail.
    public static let notFound: Int32 = 127
}
